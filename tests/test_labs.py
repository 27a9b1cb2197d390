"""Every lab's quick mode runs end to end and writes its figure and its table with the expected
columns (not the numbers: the quick settings teach nothing). About 2 minutes on 2 CPU cores.

    python -m pytest tests/test_labs.py -q
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LABS = {  # lab -> words its table's header must hold
    "beyond_the_vote": ["avg@4 [95% CI]", "maj@4 [95% CI]"],
    "wrong_labels": ["reward accuracy [95% CI]", "majority ratio [95% CI]", "correct rollouts [95% CI]"],
    "when_it_fails": ["bucket / run", "avg@4 before", "avg@4 after", "gain [95% CI] / verdict"],
    "one_example": ["trained on", "avg@2 [95% CI]", "maj@2 [95% CI]", "avg@2 change [95% CI]"],
    "reward_hacking": ["rollout accuracy", "avg@2 before", "avg@2 change [95% CI]", "verdict"],
}


@pytest.mark.parametrize("lab", LABS)
def test_lab_quick_mode_writes_its_figure_and_table(lab, tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "labs" / f"{lab}.py"), "--quick", "--out", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    header = (tmp_path / f"{lab}.md").read_text().splitlines()[0]
    assert all(f" {column} |" in header for column in LABS[lab]), header
    assert (tmp_path / f"{lab}.png").read_bytes()[:4] == b"\x89PNG"
    assert "lab time:" in p.stdout
    # a second call reads the finished runs back instead of training again
    again = subprocess.run([sys.executable, str(REPO / "labs" / f"{lab}.py"), "--quick", "--out", str(tmp_path)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "training" not in again.stdout and "earlier, read back" in again.stdout
