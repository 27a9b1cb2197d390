"""Fault injection: bad flags, damaged run folders, kills in the middle of a checkpoint, a full disk,
a run folder in use or holding an earlier run, a missing model folder, an update that wrecks the model,
a hostile run folder (a trainer state carrying code, a lock that is a symbolic link).
What is promised (docs/long-runs.md): a bad flag is one line and exit status 2 before anything loads;
a damaged checkpoint is skipped for the intact one before it, which then reproduces the uninterrupted
run exactly; a damaged config.json or eval_before.json, and a full disk, are one line each; an
earlier run's folder is never written over, and a second writer is refused while the first finishes.

    python -m pytest tests/infra/test_faults.py -q        # about 2 minutes on 2 CPU cores
"""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import checkpoint
import train
from data import tinymath
from sample import load_policy

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--engine", "hf", "--prompts-per-step", "4", "--n-votes", "4", "--n-train", "4", "--eval-k", "0",
         "--max-steps", "4", "--save-every", "1"]
TIMING = {"t_sample", "t_reward", "t_train", "t_sync"}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def steps(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in open(run / "metrics.jsonl")]


def weights(folder: Path) -> dict:
    return load_policy(str(folder))[0].state_dict()


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-step run with a checkpoint after each step (the last one's, step 4, beside final/)."""
    tinymath.get_model()
    out = tmp_path_factory.mktemp("ref") / "run"
    train.main(SMALL + ["--out", str(out)])
    return out


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """The same run killed (SIGKILL) while it wrote step 4's checkpoint: checkpoints 1-3 (the newest
    two, 2 and 3, with their trainer state), an unfinished step_000004.tmp, no final/."""
    tinymath.get_model()
    out = tmp_path_factory.mktemp("crashed") / "run"
    p = subprocess.run([sys.executable, str(REPO / "train.py")] + SMALL + ["--out", str(out)], cwd=REPO,
                       env={**ENV, "NANOTTRL_FAILPOINT": "checkpoint-model-written:4"}, capture_output=True, timeout=600)
    assert p.returncode == -9 and [c.name for c in checkpoint.complete(out)] == ["step_000001", "step_000002", "step_000003"]
    return out


def crashed_copy(crashed: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(crashed, run)
    return run


@pytest.mark.parametrize("flag,value", [
    ("--lr", "nan"), ("--lr", "-1"), ("--max-tokens", "0"), ("--max-tokens", "-3"), ("--temperature", "-1"),
    ("--temperature", "0"), ("--temperature", "1e4"), ("--top-p", "0"), ("--prompts-per-step", "0"),
    ("--micro-batch", "0"), ("--updates-per-step", "0"), ("--epochs", "-1"), ("--save-every", "-1"),
    ("--eval-k", "-1"), ("--n-votes", "-1"), ("--n-votes", "0"), ("--max-steps", "0"), ("--temperature", "1e-6"),
    ("--eval-temperature", "0"), ("--max-weight-change", "-1"), ("--lr", "1e37"),
])
def test_bad_flag_is_one_line_and_exit_2(flag, value):
    p = subprocess.run([sys.executable, str(REPO / "train.py"), flag, value], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith(f"train.py: error: {flag} ") and "must be" in lines[0]


@pytest.mark.parametrize("flag,value", [("--temperature", "0"), ("--temperature", "1e4"), ("--top-p", "0"), ("--k", "0")])
def test_eval_sampling_flags_are_one_line(flag, value):
    p = subprocess.run([sys.executable, str(REPO / "eval.py"), flag, value], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"eval.py: error: {flag} "), p.stderr


@pytest.mark.parametrize("damage", ["model-cut", "state-cut", "state-empty"])
def test_a_damaged_checkpoint_falls_back_to_the_one_before(reference, crashed, tmp_path, damage, capsys):
    run = crashed_copy(crashed, tmp_path)
    newest = run / "checkpoints" / "step_000003"
    target = newest / ("model.safetensors" if damage == "model-cut" else checkpoint.STATE)
    target.write_bytes(b"" if damage == "state-empty" else target.read_bytes()[: target.stat().st_size // 2])
    assert checkpoint.problem(newest) is not None
    train.main(["--resume", str(run)])
    out = capsys.readouterr().out
    assert "step_000003 is damaged" in out and "from step_000002" in out
    assert (run / "checkpoints" / "step_000003.damaged").is_dir()  # kept, renamed, not deleted
    assert steps(run) == steps(reference)  # steps 3 and 4 redone from checkpoint 2: the same numbers
    assert same_weights(run / "final", reference / "final")


class Payload:
    """Pickled, it asks the unpickler to call os.system: what a hostile trainer_state.pt would hold."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_hostile_trainer_state_never_runs(reference, crashed, tmp_path, capsys):
    # A run folder from elsewhere: its newest trainer state carries a payload. It is refused as damaged
    # (never unpickled), and the run falls back to the checkpoint before, repeating the reference.
    run, marker = crashed_copy(crashed, tmp_path), tmp_path / "payload-ran"
    state = run / "checkpoints" / "step_000003" / checkpoint.STATE
    torch.save({**checkpoint.load_state(state), "note": Payload(marker)}, state)
    assert "refused, as loading them could run code" in checkpoint.problem(state.parent)
    train.main(["--resume", str(run)])
    assert not marker.exists()
    assert "step_000003 is damaged" in capsys.readouterr().out
    assert steps(run) == steps(reference)


def test_a_symlinked_lock_writes_nothing_outside_the_folder(tmp_path):
    out, target = tmp_path / "run", tmp_path / "precious.txt"
    out.mkdir()
    target.write_text("the user's file\n")
    (out / checkpoint.LOCK).symlink_to(target)
    with pytest.raises(SystemExit, match=r"\.lock is a symbolic link .*remove the link"):
        train.main(SMALL + ["--out", str(out)])
    assert target.read_text() == "the user's file\n"


def start_and_signal(cmd: list[str], sig, ready) -> subprocess.CompletedProcess:
    """Run train.py with `cmd`, send it `sig` once ready() is true; its output and exit status."""
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *cmd], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the signal:\n" + proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def logged(run: Path, n: int):
    return lambda: (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= n


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_mid_run_checkpoints_its_step_and_resume_repeats_the_run(tmp_path, sig, code):
    # No checkpoint is due (--save-every 0): the one the signal writes is all there is to resume from.
    flags = [*SMALL, "--max-steps", "30", "--save-every", "0"]
    whole = train.main([*flags, "--out", str(tmp_path / "whole")])
    run = tmp_path / "run"
    done = start_and_signal([*flags, "--out", str(run)], sig, logged(run, 3))
    name = signal.Signals(sig).name
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    assert f"{name}: finishing this step, then a checkpoint" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    step = len(steps(run))
    assert last == (f"{name}: stopped after step {step}, checkpointed in {last.split(' in ')[1].split(' s;')[0]} s; "
                    f"resume with: python train.py --resume {run}"), last
    assert 3 <= step < 30 and [p.name for p in checkpoint.complete(run)] == [f"step_{step:06d}"]
    train.main(["--resume", str(run)])
    assert steps(run) == steps(whole)
    assert same_weights(run / "final", whole / "final")


def test_ctrl_c_outside_a_step_stops_at_once_in_one_line(tmp_path):
    # During the evaluation before training: no step to finish, so it stops there, without a traceback.
    run = tmp_path / "run"
    done = start_and_signal([*SMALL, "--eval-k", "64", "--out", str(run)], signal.SIGINT, lambda: (run / "config.json").exists())
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"SIGINT: stopped before training (no checkpoint yet); resume with: python train.py --resume {run}"


def test_a_signal_in_the_final_evaluation_loses_that_evaluation_only(tmp_path, capsys):
    # The last step is checkpointed and final/ written before the evaluation after training: a stop
    # there loses that evaluation only, and --resume does it again without training a step.
    flags = [*SMALL, "--max-steps", "2", "--eval-k", "16"]
    whole = train.main([*flags, "--out", str(tmp_path / "whole")])
    run = tmp_path / "run"
    done = start_and_signal([*flags, "--out", str(run)], signal.SIGTERM, lambda: (run / "final").is_dir())
    assert done.returncode == 143 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"SIGTERM: stopped after training ({run / 'final'} holds the trained "
                                                    f"model), before its evaluation ended; resume with: python train.py --resume {run}")
    assert not (run / "eval_after.json").exists()
    capsys.readouterr()
    train.main(["--resume", str(run)])
    out = capsys.readouterr().out
    assert "--resume" in out and "from step_000002" in out and not re.search(r"^step +\d", out, re.M)  # no step trained again
    assert steps(run) == steps(whole) and same_weights(run / "final", whole / "final")
    drop = lambda f: {k: v for k, v in json.loads(f.read_text()).items() if k != "seconds"}  # noqa: E731
    assert drop(run / "eval_after.json") == drop(whole / "eval_after.json")


def test_resume_of_a_finished_run_says_so_and_changes_nothing(reference, capsys):
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*")}
    with pytest.raises(SystemExit) as done:
        train.main(["--resume", str(reference)])
    assert done.value.code == 0 and f"--resume {reference}: the run is complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*")} == before


def test_resume_of_a_checkpoint_folder_names_the_run(reference):
    for folder in (reference / "checkpoints" / "step_000002", reference / "final"):
        with pytest.raises(SystemExit, match=rf"that is one of a run's model folders; resume the run: --resume {reference} "):
            train.main(["--resume", str(folder)])


def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    for out, why in ((tmp_path / "file", "File exists"), (tmp_path / "file" / "run", "Not a directory")):
        with pytest.raises(SystemExit, match=rf"--out {out}: cannot make the run folder there \({why}\); choose another --out"):
            checkpoint.claim(out, resume=False)
    assert (tmp_path / "file").read_text() == "not a folder\n"


def test_folder_habits_a_teed_log_and_start_over_keep_the_users_files(tmp_path, monkeypatch):
    # `mkdir -p runs/x && python train.py --out runs/x | tee runs/x/log.txt`: the log is not an earlier run
    out = tmp_path / "x"
    out.mkdir()
    (out / "log.txt").write_text("the tee'd log\n")
    checkpoint.claim(out, resume=False).close()
    assert (out / "log.txt").read_text() == "the tee'd log\n"
    # --start-over moves the earlier run's own files only: not the user's notes, not another run inside
    for name in ("config.json", "metrics.jsonl", "eval_before.json", "eval_before_questions.jsonl"):
        (out / name).write_text("{}\n")
    (out / "checkpoints").mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "older-run").mkdir()
    (out / "older-run" / "config.json").write_text("{}\n")
    checkpoint.claim(out, resume=False, start_over=True).close()
    (aside,) = tmp_path.glob("x.previous-*")
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoints", "config.json", "eval_before.json",
                                                       "eval_before_questions.jsonl", "metrics.jsonl"]
    assert sorted(p.name for p in out.iterdir()) == [".lock", "log.txt", "notes.txt", "older-run"]
    # never the working directory, a folder above it, or the home folder
    (tmp_path / "config.json").write_text("{}\n")
    monkeypatch.chdir(out)
    for folder in (".", "..", str(Path.home())):
        with pytest.raises(SystemExit, match=r"--start-over: .* is not a run folder"):
            checkpoint.claim(Path(folder), resume=False, start_over=True)
    assert (tmp_path / "config.json").exists() and not list(tmp_path.glob("*.previous-*"))[1:]


def test_no_intact_checkpoint_stops_unless_restart(reference, crashed, tmp_path):
    run = crashed_copy(crashed, tmp_path)
    for step in ("step_000002", "step_000003"):  # the two that keep a trainer state
        (run / "checkpoints" / step / checkpoint.STATE).write_bytes(b"")
    with pytest.raises(SystemExit, match=r"no intact checkpoint left \(2 damaged, kept as \*\.damaged\); pass --restart"):
        train.main(["--resume", str(run)])
    train.main(["--resume", str(run), "--restart"])  # over from step 0: the same run again
    assert steps(run) == steps(reference)
    assert same_weights(run / "final", reference / "final")


def test_damaged_run_files_are_one_line(crashed, tmp_path):
    run = crashed_copy(crashed, tmp_path)
    (run / "eval_before.json").write_text('{"greedy": 0.9, "avg@16"')  # cut short
    with pytest.raises(SystemExit, match="eval_before.json is damaged .*move it away"):
        train.main(["--resume", str(run)])
    config = run / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(SystemExit, match="config.json is damaged"):
        train.parse_args(["--resume", str(run)])


@pytest.mark.parametrize("failpoint", ["checkpoint-model-written", "checkpoint-before-rename"])
def test_kill_in_the_middle_of_a_checkpoint(reference, tmp_path, failpoint):
    # SIGKILL while the first checkpoint is being written: its step_000001.tmp is never loaded, the run
    # resumes from step 0 and repeats the uninterrupted run exactly.
    run = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "train.py")] + SMALL + ["--out", str(run)]
    p = subprocess.run(cmd, cwd=REPO, env={**ENV, "NANOTTRL_FAILPOINT": failpoint}, capture_output=True, timeout=600)
    assert p.returncode == -9 and (run / "checkpoints" / "step_000001.tmp").is_dir() and not checkpoint.complete(run)
    assert (run / checkpoint.LOCK).read_text().startswith("pid ")  # the killed run's lock, left behind: taken over below
    subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], cwd=REPO, env=ENV, check=True,
                   capture_output=True, timeout=600)
    assert steps(run) == steps(reference)
    assert same_weights(run / "final", reference / "final")


def test_full_disk_is_one_line_and_resume_works_after(reference, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        run = disk / "run"
        p = subprocess.run([sys.executable, str(REPO / "train.py")] + SMALL + ["--out", str(run)], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=600)
        last = p.stderr.strip().splitlines()[-1]
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
        # the first checkpoint (weights + AdamW state, ~3.6 MB) does not fit: where, how much, what is intact
        assert re.search(r"could not write checkpoint step 1: the disk is full or failing \([\d.]+ MiB free, about "
                         r"[\d.]+ MiB needed\); no checkpoint yet \(--resume starts at step 0\)", last), last
        assert f"--resume {run}" in last and not list((run / "checkpoints").glob("*.tmp"))  # the partial write is gone
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # room again
        subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], cwd=REPO, env=ENV, check=True,
                       capture_output=True, timeout=600)
        assert steps(run) == steps(reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_during_the_evaluation_leaves_no_half_file(tmp_path, monkeypatch):
    # The disk fills while eval_before_questions.jsonl is written: one line, and neither it nor
    # eval_before.json is left half-written, so the advised --resume evaluates again and finishes.
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tinymath.test_split()[:8]))
    run, write_text = tmp_path / "run", Path.write_text

    def fills_up(path, text, *args, **kwargs):
        if path.name == "eval_before_questions.jsonl.tmp":
            write_text(path, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(path, text, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", fills_up)
    flags = [*SMALL, "--data", str(data), "--eval-k", "2", "--max-steps", "2"]
    with pytest.raises(SystemExit, match=r"could not write eval_before.json: the disk is full"):
        train.main([*flags, "--out", str(run)])
    assert not [p.name for p in run.iterdir() if p.name.startswith("eval_")]
    monkeypatch.undo()
    train.main(["--resume", str(run)])
    assert json.loads((run / "eval_after.json").read_text())["votes_changed"] >= 0


def test_resume_checks_the_data_and_finds_it_from_any_directory(tmp_path, monkeypatch):
    # Started with a relative --data in one directory, resumed from another: the file is found (config.json
    # holds its resolved path, and the same file by another path is the same flag). Edited in between
    # (shortened, or reordered): one line naming the change.
    (tmp_path / "a").mkdir()
    questions = tinymath.test_split()[:8]
    (tmp_path / "a" / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))
    monkeypatch.chdir(tmp_path / "a")
    run = tmp_path / "run"
    train.main([*SMALL, "--data", "q.jsonl", "--max-steps", "2", "--out", str(run)])
    shutil.rmtree(run / "final")
    monkeypatch.chdir(tmp_path)
    for edit, change in ((questions[:6], "6 usable questions, the run started with 8"),
                         (questions[::-1], "the same 8 questions in number, but other text or another order")):
        (tmp_path / "a" / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edit))
        with pytest.raises(SystemExit, match=rf"--data {tmp_path / 'a' / 'q.jsonl'} changed since the run started \({change}\)"):
            train.main(["--resume", str(run)])
    (tmp_path / "a" / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))
    train.main(["--resume", str(run), "--data", "a/q.jsonl"])
    assert (run / "final").is_dir() and json.loads((run / "data.json").read_text())["questions"] == 8


def test_a_check_that_fails_after_the_claim_leaves_no_folder(tmp_path):
    # --max-tokens 200 is refused once the model's context (128) is known, after the run folder was claimed
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, str(REPO / "train.py"), *SMALL, "--max-tokens", "200", "--out", str(out)], cwd=REPO,
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "no prompt fits the model context (128) with --max-tokens 200" in p.stderr
    assert not out.exists()


def test_a_folder_holding_a_run_is_refused_before_anything_is_written(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit, match="--data nope.jsonl: file not found"):  # a typo in another flag
        train.main(SMALL + ["--out", str(run), "--data", "nope.jsonl"])
    with pytest.raises(SystemExit, match=rf"--out {re.escape(str(run))}: the folder holds an earlier run \(.*\); --resume"):
        train.main(SMALL + ["--out", str(run), "--max-steps", "3"])
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != checkpoint.LOCK}
    assert after == {p: b for p, b in before.items() if p.name != checkpoint.LOCK}  # nothing changed
    train.main(SMALL + ["--out", str(run), "--max-steps", "1", "--start-over"])
    aside = list(tmp_path.glob("run.previous-*"))
    assert len(aside) == 1 and "earlier run's files moved to" in capsys.readouterr().out
    assert steps(aside[0]) == steps(reference) and len(steps(run)) == 1  # the old run whole, beside the new one
    assert (aside[0] / "checkpoints" / "step_000004").is_dir()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000001"]  # the new run's only


def test_a_second_writer_is_refused_while_the_first_finishes(reference, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(REPO / "train.py")] + SMALL + ["--out", str(run)], cwd=REPO, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = run / checkpoint.LOCK
    for _ in range(600):  # the lock is taken once the data and the model path are checked
        if lock.is_file() and lock.read_text().startswith(f"pid {first.pid} "):
            break
        time.sleep(0.1)
    with pytest.raises(SystemExit, match=rf"another train.py is writing there \(pid {first.pid} on "):
        train.main(SMALL + ["--out", str(run)])
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    assert steps(run) == steps(reference) and same_weights(run / "final", reference / "final")


@pytest.mark.parametrize("lr,what", [("1e3", r"multiplied the weights' norm by [\d.e+]+ \(limit --max-weight-change 0.01\)"),
                                     ("1e-2", r"changed the weights' norm by [\d.]+% \(limit --max-weight-change 0.01\)"),
                                     ("1e36", "made the weights' norm NaN/inf")])
def test_an_update_that_wrecks_the_model_stops_the_run(reference, tmp_path, lr, what):
    run = tmp_path / "run"
    with pytest.raises(SystemExit, match=rf"step 1: the update at lr {re.escape(f'{float(lr):.3g}')} {what}; the run stops"):
        train.main(SMALL + ["--out", str(run), "--lr", lr])
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))
            for line in open(run / "metrics.jsonl")]
    assert len(rows) == 1 and not (run / "final").exists() and not (run / "checkpoints").exists()
    # what a normal update does, for the limit's sake: the reference run (lr 5e-5) moves the norm by < 0.1%
    assert 0 < max(s["weight_change"] for s in steps(reference)) < 1e-3


def test_a_missing_local_model_folder_is_no_such_folder(reference, tmp_path):
    import eval as evaluation

    missing = reference / "checkpoints" / "step_000009"
    for main in (train.main, evaluation.main):
        with pytest.raises(SystemExit, match=rf"^--model {re.escape(str(missing))}: no such folder$"):
            main(["--model", str(missing), "--out", str(tmp_path / main.__module__)])
    with pytest.raises(SystemExit, match=r"^--model runs/nothing-here: no such folder$"):
        train.main(["--model", "runs/nothing-here", "--out", str(tmp_path / "r")])
