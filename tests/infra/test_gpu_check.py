"""projects/gpu_check.py, the GPU check, runs its CPU-possible parts at tiny sizes through
projects/gpu_check.sh (about 1 minute).

    python -m pytest tests/infra/test_gpu_check.py -q
"""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    # through projects/gpu_check.sh, as on a GPU machine: the script's JSON, log and run logs
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    subprocess.run(["bash", str(REPO / "projects" / "gpu_check.sh"), "--small", "--device", "cpu"], env=env,
                   check=True, capture_output=True, timeout=900)
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert "e. torchrun" in (tmp_path / "out" / "gpu_check.log").read_text()
    with tarfile.open(tmp_path / "out" / "gpu_check_runs.tar.gz") as tar:
        assert "work/tiny-math.log" in tar.getnames() and "work/tiny-math/metrics.jsonl" in tar.getnames()
    for section in ("update", "precision", "engine", "runs", "torchrun"):
        assert "error" not in report[section], report[section]
    assert report["update"]["alone"]["update"] == "ok" and report["update"]["with_engine_block"]["update"] == "ok"
    # lr 5e-7 moves every float32 weight, and bf16 would keep only a few percent of those moves
    assert report["precision"]["changed_in_float32"] > 0.9 * report["precision"]["weights"]
    assert report["precision"]["share_kept_by_bf16"] < 0.2
    assert report["engine"]["32_tokens"]["generated"] > report["engine"]["16_tokens"]["generated"]
    run = report["runs"]["tiny-math"]
    assert run["run"]["exit"] == 0 and run["resume"]["exit"] == 0 and run["resumed_step_2_equal"]
    assert report["torchrun"]["ddp"]["exit"] == 0 and report["torchrun"]["fsdp"]["exit"] == 0
