"""What every lab shares: its command line, train.py runs in subprocesses, reading run folders back,
intervals, and writing the figure and the table. A lab is a script around train.py runs and their
run folders; nothing here trains or evaluates by itself.

    python labs/<lab>.py [--quick] [--out DIR]

--out (default runs/labs/<lab>) holds each run's folder (runs/<name>/, with its log beside it as
runs/<name>.log), the lab's figure (<lab>.png) and table (<lab>.md). A run folder that already holds a
finished run is read back, not run again: a lab re-draws its figure in seconds, and an interrupted lab
continues where it stopped (an unfinished run is started over, its files moved aside by train.py).
"""
import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository's modules by name (eval.py's bootstrap, data/)

from eval import bootstrap_ci  # noqa: E402

TIMING = ("t_sample", "t_reward", "t_train", "t_sync")


def parse(doc: str, name: str, extra=None) -> argparse.Namespace:
    """The lab's flags: --quick, --out, and its own (extra(ap) adds them)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings that finish in well under a minute (a smoke test; "
                                                         "the figure shows nothing to learn from)")
    ap.add_argument("--out", default=f"runs/labs/{name}", help="folder for the lab's runs, figure and table")
    if extra:
        extra(ap)
    args = ap.parse_args()
    args.name, args.out = name, Path(args.out)
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    args.t0 = time.time()
    return args


def train(args, run: str, flags: list[str]) -> Path:
    """python train.py FLAGS --out OUT/runs/RUN, unless that folder holds a finished run (final/) or the
    run stopped itself before (RUN.stopped: a guard ended it; its last line is kept there). Output goes
    to RUN.log; one line per run on screen."""
    out = args.out / "runs" / run
    stopped = out.with_suffix(".stopped")
    if (out / "final").exists() or stopped.exists():
        print(f"  {run}: {'finished' if (out / 'final').exists() else 'stopped'} earlier, read back")
        return out
    cmd = [sys.executable, str(REPO / "train.py"), *flags, "--out", str(out)] + (["--start-over"] if out.exists() else [])
    t = time.time()
    print(f"  {run}: training ...", end="", flush=True)
    with open(out.with_suffix(".log"), "w") as log:
        p = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    last = (out.with_suffix(".log").read_text().strip().splitlines() or [""])[-1]
    if p.returncode and "the run stops" in last:  # train.check_update's guard ended it, with one line
        stopped.write_text(last + "\n")
        print(f" stopped after {time.time() - t:.0f} s: {last}")
    elif p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {p.returncode}); its output: {out.with_suffix('.log')}")
    else:
        print(f" {time.time() - t:.0f} s")
    return out


def stopped(run: Path) -> str | None:
    """The line train.py stopped the run with, or None."""
    path = run.with_suffix(".stopped")
    return path.read_text().strip() if path.exists() else None


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path)] if path.exists() else []


def steps(run: Path) -> list[dict]:
    """metrics.jsonl: one dict per step."""
    return lines(run / "metrics.jsonl")


def evaluation(run: Path, tag: str) -> dict:
    """eval_before.json / eval_after.json ({} when absent)."""
    path = run / f"eval_{tag}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def curve(run: Path) -> list[dict]:
    """Every evaluation of a run in step order: before (step 0), --eval-every's, after."""
    from monitor import evaluations
    return evaluations(run)


def per_question(runs: list[Path], tag: str, metric: str) -> np.ndarray:
    """(Q,) the metric of each question (eval_TAG_questions.jsonl), averaged over the runs (seeds)."""
    return np.mean([[float(r[metric]) for r in lines(run / f"eval_{tag}_questions.jsonl")] for run in runs], axis=0)


def mean_ci(values: np.ndarray, seed: int = 0) -> str:
    """'0.812 [0.76, 0.86]': the mean and its 95% bootstrap interval over the items (questions, groups)."""
    values = np.asarray(values, float)
    lo, hi = bootstrap_ci({"m": values}, seed=seed)["m"]
    return f"{values.mean():.3f} [{lo:.2f}, {hi:.2f}]"


def data_file(args, rows: list[dict], name: str) -> Path:
    """rows ({"question", "answer"}) as a JSONL data file in the lab's folder (train.py --data FILE)."""
    path = args.out / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def table(args, header: list[str], rows: list[list], note: str = "") -> str:
    """A markdown table, printed and written to OUT/<lab>.md (with the note under it)."""
    text = "| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|\n"
    text += "".join("| " + " | ".join(str(c) for c in r) + " |\n" for r in rows)
    text += f"\n{note}\n" if note else ""
    (args.out / f"{args.name}.md").write_text(text)
    print("\n" + text)
    return text


def save(args, fig) -> Path:
    """The figure as OUT/<lab>.png; the lab's total time on screen."""
    path = args.out / f"{args.name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure: {path}\ntable: {args.out / (args.name + '.md')}\nlab time: {time.time() - args.t0:.0f} s")
    return path


def bars(ax, names: list[str], values: list[np.ndarray], colors=None) -> None:
    """One bar per name: the mean of its values (one per question) with a 95% bootstrap interval."""
    means, cis = [v.mean() for v in values], [bootstrap_ci({"v": v})["v"] for v in values]
    ax.bar(range(len(names)), means, color=colors or "C0")
    ax.errorbar(range(len(names)), means, yerr=[[m - lo for m, (lo, _) in zip(means, cis)], [hi - m for m, (_, hi) in zip(means, cis)]],
                fmt="none", c="k", capsize=3)
    ax.axhline(0, c="k", lw=0.8)
    ax.set_xticks(range(len(names)), [n.replace(", ", ",\n") for n in names], fontsize=8)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def load_config(run: Path) -> dict:
    """The run's resolved flags (config.json)."""
    return json.loads((run / "config.json").read_text())


def carries(question: str) -> int:
    """How many columns of the sum 'a+b' carry."""
    a, b = question.split("+")
    carry = count = 0
    for x, y in zip(map(int, reversed(a)), map(int, reversed(b))):
        carry = (x + y + carry) // 10
        count += carry
    return count


def hard_questions(n: int, seed: int = 11) -> list[dict]:
    """Hard tiny-math questions (labs 2 and 3): n 4-digit sums with >= 3 carries, every other one with
    an 8+7 column (the tiny model's weakest fact); none from the test split."""
    from data import tinymath
    rng, test, rows = random.Random(seed), {r["question"] for r in tinymath.test_split()}, []
    while len(rows) < n:
        q = tinymath.make_question(rng, 4)
        seven_eight = any({x, y} == {"8", "7"} for x, y in zip(*q.split("+")))
        if q not in test and carries(q) >= 3 and seven_eight == (len(rows) % 2 == 1):
            rows.append({"question": q, "answer": tinymath.true_answer(q)})
    return rows
