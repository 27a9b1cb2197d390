"""Fault injection: bad flags, damaged run folders, kills in the middle of a checkpoint, a full disk,
a run folder in use or holding an earlier run, a missing model folder, an update that wrecks the model.
What is promised (docs/long-runs.md): a bad flag is one line and exit status 2 before anything loads;
a damaged checkpoint is skipped for the intact one before it, which then reproduces the uninterrupted
run exactly; a damaged config.json or eval_before.json, and a full disk, are one line each; an
earlier run's folder is never written over, and a second writer is refused while the first finishes.

    python -m pytest tests/infra/test_faults.py -q        # about 2 minutes on 2 CPU cores
"""
import json
import os
import re
import shutil
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
    """An uninterrupted 4-step run with a checkpoint after steps 1, 2 and 3 (step 4 is final/)."""
    tinymath.get_model()
    out = tmp_path_factory.mktemp("ref") / "run"
    train.main(SMALL + ["--out", str(out)])
    return out


def crashed_copy(reference: Path, tmp_path: Path) -> Path:
    """The reference run as a crash during step 4 leaves it: checkpoints 1-3, no final/."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "final")
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
def test_a_damaged_checkpoint_falls_back_to_the_one_before(reference, tmp_path, damage, capsys):
    run = crashed_copy(reference, tmp_path)
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


def test_no_intact_checkpoint_stops_unless_restart(reference, tmp_path):
    run = crashed_copy(reference, tmp_path)
    for step in ("step_000002", "step_000003"):  # the two that keep a trainer state
        (run / "checkpoints" / step / checkpoint.STATE).write_bytes(b"")
    with pytest.raises(SystemExit, match=r"no intact checkpoint left \(2 damaged, kept as \*\.damaged\); pass --restart"):
        train.main(["--resume", str(run)])
    train.main(["--resume", str(run), "--restart"])  # over from step 0: the same run again
    assert steps(run) == steps(reference)
    assert same_weights(run / "final", reference / "final")


def test_damaged_run_files_are_one_line(reference, tmp_path):
    run = crashed_copy(reference, tmp_path)
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
    assert (aside[0] / "checkpoints" / "step_000003").is_dir() and not (run / "checkpoints").exists()


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
