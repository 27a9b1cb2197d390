"""projects/gpu_check.py, the GPU check, runs its CPU-possible parts at tiny sizes (about 1.5 minutes).

    python -m pytest tests/infra/test_gpu_check.py -q
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    out = tmp_path / "check.json"
    subprocess.run([sys.executable, str(REPO / "projects" / "gpu_check.py"), "--small", "--device", "cpu",
                    "--out", str(out), "--work", str(tmp_path / "work")], cwd=REPO, check=True, capture_output=True, timeout=900)
    report = json.loads(out.read_text())
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
