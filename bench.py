"""Benchmark: the default TTRL run, end to end, for several seeds; prints the README's results table.

    python bench.py                      # 3 seeds; the first builds the tiny model from scratch
    python bench.py --seeds 0 --reuse    # one seed, cached model

Each seed runs `python train.py --seed S --out runs/bench-S` in a subprocess and is timed from the
outside (model build included for the first seed unless --reuse). The table reports the TTRL
protocol's metrics before and after, and checks TTRL's claim: after avg@16 >= before maj@16.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="TTRL seeds to run")
ap.add_argument("--reuse", action="store_true", help="reuse the cached tiny model instead of timing a fresh build")
ap.add_argument("train_args", nargs=argparse.REMAINDER, help="extra flags passed to train.py (after --)")
args = ap.parse_args()

env = dict(os.environ)
if not args.reuse:  # a fresh cache: the first run pays for building the model, like a new user
    env["NANOTTRL_CACHE"] = tempfile.mkdtemp(prefix="nanottrl-bench-")
rows = []
for seed in args.seeds:
    out = Path(f"runs/bench-{seed}")
    extra = [a for a in args.train_args if a != "--"]
    t = time.time()
    subprocess.run([sys.executable, "train.py", "--seed", str(seed), "--out", str(out), *extra], env=env, check=True)
    wall = time.time() - t
    before = json.loads((out / "eval_before.json").read_text())
    after = json.loads((out / "eval_after.json").read_text())
    rows.append((seed, wall, before, after))

k = json.loads((out / "config.json").read_text())["eval_k"]
keys = ["greedy", f"avg@{k}", f"maj@{k}", f"pass@{k}"]
print(f"\n| seed | wall (s) | {' | '.join(keys)} | after avg@{k} >= before maj@{k} |")
print("|---" * (len(keys) + 3) + "|")
for seed, wall, b, a in rows:
    cells = [f"{b[key]:.3f} -> {a[key]:.3f}" for key in keys]
    print(f"| {seed} | {wall:.0f} | " + " | ".join(cells) + f" | {'yes' if a[keys[1]] >= b[keys[2]] else 'NO'} |")
