#!/usr/bin/env bash
# projects/gpu_check.py on a GPU machine that has PyTorch but no internet (e.g. a lent cloud GPU):
# installs the wheels brought along in .whl/, runs the check, and leaves the JSON, the log and the
# train.py run logs in $OUT.
#
#   bash projects/gpu_check.sh                           # on the GPU machine, from anywhere
#   OUT=/tmp/g WORK=/tmp/w bash projects/gpu_check.sh --small --device cpu   # tiny sizes, on CPU
# OUT: where the results go (default runs/gpu_check_out); WORK: the train.py runs' folder (runs/gpu_check);
# PYTHON: the interpreter that has PyTorch (python3).
#
# Prepared on a machine with internet, from the repository root (both folders are git-ignored):
#   NANOTTRL_CACHE=.cache python -m data.tinymath      # and data.tinydigits, data.tinyaudio: the embedded models
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
# (the Python version and platform of the GPU machine; add what else its Python lacks).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check_out} WORK=${WORK:-runs/gpu_check} PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
if compgen -G ".whl/*.whl" >/dev/null; then  # --target: the machine's own packages stay untouched
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/nanottrl-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/nanottrl-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -z "${NANOTTRL_CACHE:-}" ] && [ -d .cache ]; then export NANOTTRL_CACHE=$PWD/.cache; fi  # models brought along
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1  # no hub: a model or file not found is an error, not a download
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
"$PYTHON" projects/gpu_check.py --out "$OUT/gpu_check.json" --work "$WORK" "$@" 2>&1 | tee "$OUT/gpu_check.log"
status=${PIPESTATUS[0]}
# the train.py runs' own logs and metrics (no weights): what a failed check printed beyond its last lines
tar -czf "$OUT/gpu_check_runs.tar.gz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' -C "$(dirname "$WORK")" "$(basename "$WORK")"
exit "$status"
