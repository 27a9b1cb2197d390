"""Reliability on the tiny model: kill -9 and resume, reproducibility, update guards, bad flags.

    python -m pytest tests/infra/test_resume.py -q
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import checkpoint
from data import tinymath
import train
from monitor import CollapseMonitor
from rewards import REWARDS
from sample import Rollout, load_policy

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--engine", "hf", "--prompts-per-step", "4", "--n-votes", "4", "--n-train", "4", "--eval-k", "0"]
TIMING = {"t_sample", "t_reward", "t_train", "t_sync"}


def steps(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in open(run / "metrics.jsonl")]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
RUN8 = [sys.executable, str(REPO / "train.py")] + SMALL + ["--max-steps", "8", "--save-every", "2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 8-step run, in a subprocess like the killed one: what resuming must reproduce."""
    tinymath.get_model()
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(RUN8 + ["--out", str(out)], cwd=REPO, env=ENV, check=True, capture_output=True, timeout=600)
    return steps(out), load_policy(str(out / "final"))[0]


def test_same_seed_same_metrics(tmp_path):
    a = train.main(SMALL + ["--max-steps", "3", "--out", str(tmp_path / "a")])
    b = train.main(SMALL + ["--max-steps", "3", "--out", str(tmp_path / "b")])
    assert steps(a) == steps(b) and len(steps(a)) == 3


def test_kill9_then_resume_finishes_the_same_run(reference, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(RUN8 + ["--out", str(run)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once step 3 is logged (checkpoint 2 is on disk)
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert 3 <= done < 8 and not (run / "final").exists()
    # A checkpoint cut short by a kill is a *.tmp folder: plant a corrupt one further ahead; it must be ignored.
    fake = run / "checkpoints" / "step_000006.tmp"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / checkpoint.STATE).write_bytes(b"half-written")
    assert checkpoint.latest(run).name <= "step_000004"

    subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], cwd=REPO, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    resumed = steps(run)
    assert [m["step"] for m in resumed] == list(range(1, 9))  # every step exactly once
    assert resumed == reference[0]  # and exactly the uninterrupted run's numbers
    final, _ = load_policy(str(run / "final"))
    for a, b in zip(final.state_dict().values(), reference[1].state_dict().values()):
        assert torch.equal(a, b)
    assert not list((run / "checkpoints").glob("*.tmp"))
    # only the newest two checkpoints keep the optimizer state (one to fall back on)
    assert [p.name for p in checkpoint.complete(run) if (p / checkpoint.STATE).exists()] == ["step_000006", "step_000008"]


def test_resume_repeats_the_collapse_monitor_and_the_skip_count(tmp_path):
    # --collapse-entropy 1.0: every step is "low", so the streak reaches --collapse-patience 5 at step 5.
    # Resumed from step 4, the monitor must go on from a streak of 4 (warning at step 5, as uninterrupted),
    # and nonfinite_skips from the log's count, not restart at 0.
    flags = SMALL + ["--max-steps", "6", "--save-every", "1", "--collapse-entropy", "1.0", "--collapse-patience", "5"]
    whole = train.main(flags + ["--out", str(tmp_path / "whole")])
    assert [m["step"] for m in steps(whole) if m["collapse_warning"]] == [5]
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step_000005")  # the newest left, step 4, keeps its trainer state
    lines = (run / "metrics.jsonl").read_text().splitlines()  # as if two updates of steps 1-4 had been skipped
    (run / "metrics.jsonl").write_text("".join(json.dumps({**json.loads(x), "nonfinite_skips": 2}) + "\n" for x in lines))
    train.main(["--resume", str(run)])
    resumed = steps(run)
    assert [m["nonfinite_skips"] for m in resumed] == [2] * 6
    assert [{**m, "nonfinite_skips": 0} for m in resumed] == steps(whole)  # the warning at step 5 included


def test_resume_rejects_a_different_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(vars(train.parse_args(SMALL + ["--max-steps", "8"]))))
    with pytest.raises(SystemExit, match=r"incompatible flags, the run used n_votes=4 \(given 8\), lr=5e-05 \(given 0.001\)"):
        train.parse_args(["--resume", str(run), "--lr", "1e-3", "--n-votes", "8"])
    args = train.parse_args(["--resume", str(run), "--micro-batch", "2", "--n-votes", "4"])  # speed flags may change
    assert (args.micro_batch, args.n_votes, args.max_steps, str(args.out)) == (2, 4, 8, str(run))
    with pytest.raises(SystemExit, match="no config.json"):
        train.parse_args(["--resume", str(tmp_path)])


@pytest.mark.parametrize("flag,value", [("--reward", "vote"), ("--engine", "sglang"), ("--encoder", "bert")])
def test_unknown_choice_lists_the_valid_ones(flag, value, capsys):
    with pytest.raises(SystemExit):
        train.parse_args([flag, value])
    err = capsys.readouterr().err
    assert value in err and ("minilm" in err or "majority" in err or "vllm" in err)


def test_nonfinite_update_is_skipped():
    model, tok = load_policy(str(tinymath.get_model()))
    batch = train.collate([Rollout([1, 2, 3], [4, 5], "", [-1.0, -1.0], False)] * 2, tok.pad_token_id)
    batch.old_logp = train.no_grad_logprobs(model, batch, train.parse_args([]))
    batch.advantages = torch.tensor([float("nan"), 1.0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    stats, _, _ = train.update_policy(model, opt, batch, train.parse_args([]))
    assert stats["nonfinite"] == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not opt.state  # AdamW never saw the NaN gradient


def test_unanimous_step_updates_nothing(tmp_path, monkeypatch):
    # Every group unanimous -> every advantage 0 -> no update at all (AdamW's weight decay would
    # otherwise still move the weights).
    real = REWARDS["majority"]

    def unanimous(answers, ctx):
        rewards, labels = real(answers, ctx)
        return rewards * 0 + 1, labels
    monkeypatch.setitem(REWARDS, "majority", unanimous)
    out = train.main(SMALL + ["--max-steps", "2", "--out", str(tmp_path / "run"), "--collapse-distinct", "100",
                              "--collapse-patience", "2"])
    assert [m["update"] for m in steps(out)] == ["no-signal", "no-signal"]
    assert [bool(m["collapse_warning"]) for m in steps(out)] == [False, True]  # the monitor fires in a real run
    start, _ = load_policy(str(tinymath.get_model()))
    final, _ = load_policy(str(out / "final"))
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), final.state_dict().values()))


def test_mask_truncated_counts_and_masks(tmp_path, capsys):
    # --max-tokens 6 cuts every completion: all are counted, and masking them leaves nothing to train on,
    # which the step's warning says, naming the flag to raise.
    out = train.main(SMALL + ["--max-steps", "1", "--max-tokens", "6", "--mask-truncated", "--out", str(tmp_path / "run")])
    (m,) = steps(out)
    assert m["truncated_frac"] == 1.0 and m["truncated_trained"] == 16 and m["update"] == "no-signal"
    assert "WARNING step 1: every completion reached --max-tokens 6 before its end" in capsys.readouterr().out


def test_more_prompts_per_step_than_questions_is_recorded_as_used(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tinymath.test_split()[:8]))
    out = train.main(SMALL + ["--data", str(data), "--max-steps", "1", "--prompts-per-step", "500", "--out", str(tmp_path / "run")])
    assert "--prompts-per-step 500: the data has 8 questions to train on; 8 per step" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["prompts_per_step"] == 8


def test_collapse_monitor_warns_once_per_streak():
    mon = CollapseMonitor(entropy_floor=0.01, distinct_floor=1.1, patience=3)
    base = {"majority_ratio": 1.0, "response_len": 20.0}
    low = {**base, "entropy": 0.001, "distinct_answers": 1.0}
    high = {**base, "entropy": 0.5, "distinct_answers": 3.0}
    seq = [low, low, low, low, high, low, low, low]
    warned = [bool(mon.check(m)) for m in seq]
    assert warned == [False, False, True, False, False, False, False, True]
