"""Benchmark: a TTRL run end to end for several seeds (and reward modes); prints the README's tables.

    python projects/bench.py                      # 3 seeds of the default run; the first builds the tiny model from scratch
    python projects/bench.py --seeds 0 --reuse    # one seed, cached model
    python projects/bench.py --reuse --rewards majority centroid cluster judge -- --preset tiny-sounds   # the audio table

Each run is `python train.py --seed S [--reward R] --out runs/bench-[R-]S` in a subprocess, timed from
the outside (model build included for the first run unless --reuse). The table reports the TTRL
protocol's metrics before and after, checks TTRL's claim (after avg@k >= before maj@k), and, per
run, the pseudo-labels' quality from metrics.jsonl: label accuracy (the label judged by the task's
checker) and reward accuracy (pseudo-reward >= 0.5 agrees with the true reward), averaged over steps.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN = Path(__file__).resolve().parents[1] / "train.py"

COLUMNS = ["greedy", "avg@{k}", "maj@{k}", "pass@{k}"]  # before -> after, from eval_before.json / eval_after.json


def header(k: int) -> str:
    """The table's header row, as the README shows it (tests/test_readme.py holds the two together)."""
    cells = ["reward", "seed", "wall (s)", "label acc", "reward acc", *(c.format(k=k) for c in COLUMNS),
             f"after avg@{k} >= before maj@{k}"]
    return "| " + " | ".join(cells) + " |\n" + "|---" * len(cells) + "|"


def row(reward: str, seed: int, wall: float, before: dict, after: dict, steps: list[dict], k: int) -> str:
    """One run's row: the pseudo-labels' quality averaged over its steps, each metric before -> after."""
    signal = [float(np.mean([s[m] for s in steps])) for m in ("label_acc", "reward_acc")]
    cells = [f"{before[c.format(k=k)]:.3f} -> {after[c.format(k=k)]:.3f}" for c in COLUMNS]
    claim = "yes" if after[f"avg@{k}"] >= before[f"maj@{k}"] else "NO"
    return f"| {reward} | {seed} | {wall:.0f} | {signal[0]:.3f} | {signal[1]:.3f} | " + " | ".join(cells) + f" | {claim} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="TTRL seeds to run")
    ap.add_argument("--rewards", nargs="+", default=[None], help="reward modes to compare (train.py --reward); default: the run's own")
    ap.add_argument("--reuse", action="store_true", help="reuse the cached tiny model instead of timing a fresh build")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="extra flags passed to train.py (after --)")
    args = ap.parse_args()

    env = dict(os.environ)
    if not args.reuse:  # a fresh cache: the first run pays for building the model, like a new user
        env["NANOTTRL_CACHE"] = tempfile.mkdtemp(prefix="nanottrl-bench-")
    rows = []
    for reward in args.rewards:
        for seed in args.seeds:
            out = Path(f"runs/bench-{reward + '-' if reward else ''}{seed}")
            shutil.rmtree(out, ignore_errors=True)  # the benchmark's own folder, from its last run: train.py never overwrites
            extra = [a for a in args.train_args if a != "--"] + (["--reward", reward] if reward else [])
            t = time.time()
            subprocess.run([sys.executable, str(TRAIN), "--seed", str(seed), "--out", str(out), *extra], env=env, check=True)
            wall = time.time() - t
            config = json.loads((out / "config.json").read_text())
            steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            rows.append(row(config["reward"], seed, wall, json.loads((out / "eval_before.json").read_text()),
                            json.loads((out / "eval_after.json").read_text()), steps, config["eval_k"]))
    print("\n" + header(config["eval_k"]))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
