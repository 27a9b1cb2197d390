"""Fault injection: bad flags, damaged run folders, kills in the middle of a checkpoint, a full disk.
What is promised (docs/long-runs.md): a bad flag is one line and exit status 2 before anything loads;
a damaged checkpoint is skipped for the intact one before it, which then reproduces the uninterrupted
run exactly; a damaged config.json or eval_before.json, and a full disk, are one line each.

    python -m pytest tests/infra/test_faults.py -q        # about 2 minutes on 2 CPU cores
"""
import json
import os
import shutil
import subprocess
import sys
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
    ("--eval-k", "-1"), ("--n-votes", "-1"), ("--n-votes", "0"), ("--max-steps", "0"),
])
def test_bad_flag_is_one_line_and_exit_2(flag, value):
    p = subprocess.run([sys.executable, str(REPO / "train.py"), flag, value], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith(f"train.py: error: {flag} ") and "must be" in lines[0]


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
        assert "the disk is full or failing" in last and f"--resume {run}" in last
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # room again
        subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], cwd=REPO, env=ENV, check=True,
                       capture_output=True, timeout=600)
        assert steps(run) == steps(reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
