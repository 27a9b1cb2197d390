"""Lab 3 (TTRL's third question, "when does it fail?"): gains by difficulty, and hyper-parameters that
make a run collapse.

    python labs/when_it_fails.py            # 9 runs on tiny-math, about 5 minutes on 2 CPU cores
    python labs/when_it_fails.py --quick    # a smoke test, under a minute

(a) Difficulty. The paper finds TTRL's gains shrink as the questions get harder: where the model
lacks the knowledge, its vote is wrong and the rewards teach the wrong answer. Here: the test split
(2-, 3- and 4-digit sums) plus --hard carry-heavy 4-digit sums with an 8+7 column (the tiny model's
weakest fact, where its vote of 16 is right a few percent of the time), trained together with the
default recipe for --seeds seeds. Gain = avg@16 after - before, by bucket: by digits, and by the
start model's own avg@16 on the question (the label-free view of difficulty a user could compute).

(b) Hyper-parameters. From the default (T = 1.0, lr 5e-5, 16 votes), one change at a time: the
sampling temperature, the learning rate, the number of votes. A run "collapses" when its label-free
signals give out (monitor.py: token entropy or distinct answers under their floors for 5 steps, the
majority ratio near 1): the figure shows those signals beside the true accuracy of the rollouts,
which only labels reveal, and the table says which collapsed runs lost accuracy.
"""
from pathlib import Path

import numpy as np

import common  # first: puts the repository on the path
from data import tinymath

SWEEP = {"default (T 1.0, lr 5e-5, 16 votes)": [], "T 0.6": ["--temperature", "0.6"], "T 1.5": ["--temperature", "1.5"],
         "lr 2e-4": ["--lr", "2e-4"], "lr 1e-3": ["--lr", "1e-3"], "4 votes": ["--n-votes", "4", "--n-train", "4"]}


def flags(ap):
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the difficulty runs (a)")
    ap.add_argument("--hard", type=int, default=32, help="carry-heavy 4-digit questions with an 8+7 column added in (a)")


def bucket(question: str, hard: set) -> str:
    return "4 digits, 8+7 and 3+ carries" if question in hard else f"{len(question.split('+')[0])} digits"


def main():
    args = common.parse(__doc__, "when_it_fails", flags)
    quick = ["--max-steps", "2", "--eval-k", "4", "--n-votes", "4", "--n-train", "4", "--prompts-per-step", "4"]
    hard_rows = [r for i, r in enumerate(common.hard_questions(2 * args.hard)) if i % 2]  # the 8+7 half
    rows = tinymath.test_split() + hard_rows
    if args.quick:
        rows, args.seeds = rows[:12] + hard_rows[:4], args.seeds[:1]
    data = common.data_file(args, rows, "difficulty")
    base = ["--engine", "hf"] + (quick if args.quick else [])
    print("(a) difficulty")
    diff_runs = [common.train(args, f"difficulty-seed{s}", base + ["--data", str(data), "--seed", str(s)]) for s in args.seeds]
    print("(b) hyper-parameters")
    changes = list(SWEEP.items())[:1 if args.quick else None]
    small = ["--data", str(data)] if args.quick else []  # the quick runs' few questions
    sweep = {name: common.train(args, f"sweep-{i}", base + small + change) for i, (name, change) in enumerate(changes)}

    k = common.load_config(diff_runs[0])["eval_k"]
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    rows = difficulty(axes[0], diff_runs, {r["question"] for r in hard_rows}, k) + hyper_parameters(axes[1:], sweep, k)
    common.table(args, ["part", "bucket / run", "questions / steps", f"avg@{k} before", f"avg@{k} after",
                        "gain [95% CI] / verdict"], rows,
                 f"(a) {len(args.seeds)} seeds, each question's avg@{k} averaged over them; intervals: bootstrap over the "
                 f"bucket's questions. (b) one run each (seed 0) on the test split; collapse = monitor.py's warning.")
    common.save(args, fig)


def difficulty(ax, runs: list[Path], hard: set, k: int) -> list[list]:
    """(a): the gain of each question (avg@k after - before, averaged over the seeds' runs), by number of
    digits (bars on `ax`) and by the start model's own avg@k; the table's rows."""
    questions = [r["question"] for r in common.lines(runs[0] / "eval_before_questions.jsonl")]
    before, after = (common.per_question(runs, tag, f"avg@{k}") for tag in ("before", "after"))
    by_digits = np.array([bucket(q, hard) for q in questions])
    start = [f"start avg@{k} < 0.5", "0.5 - 0.9", ">= 0.9"]
    by_start = np.array([start[0] if b < 0.5 else start[1] if b < 0.9 else start[2] for b in before])
    digits = sorted(set(by_digits))
    rows = [[kind, name, int((labels == name).sum()), f"{before[labels == name].mean():.3f}",
             f"{after[labels == name].mean():.3f}", common.mean_ci((after - before)[labels == name])]
            for kind, labels, order in (("digits", by_digits, digits), ("start model's accuracy", by_start, start))
            for name in order if (labels == name).any()]
    common.bars(ax, digits, [(after - before)[by_digits == name] for name in digits])
    ax.set_ylabel(f"gain in avg@{k} (after - before)")
    ax.set_title(f"(a) gain by difficulty ({len(runs)} seed(s), 95% CI)")
    return rows


def hyper_parameters(axes, sweep: dict[str, Path], k: int) -> list[list]:
    """(b): each run's rollout accuracy, token entropy and majority ratio over its steps (one line per
    run on each of the three `axes`, thick where monitor.py warned of a collapse); the table's rows."""
    rows = []
    for (name, run), color in zip(sweep.items(), ["k", "C0", "C1", "C2", "C3", "C4"]):
        steps, b, a = common.steps(run), common.evaluation(run, "before"), common.evaluation(run, "after")
        warn = next((m["step"] for m in steps if m.get("collapse_warning")), None)
        for ax, key in zip(axes, ("true_reward", "entropy", "majority_ratio")):
            ax.plot([m["step"] for m in steps], [m.get(key, np.nan) for m in steps], c=color, lw=2.2 if warn else 1.0,
                    label=name + (" (collapse warning)" if warn else ""))
        fell = a.get(f"avg@{k}", np.nan) < b.get(f"avg@{k}", np.nan)
        verdict = ("stopped: " + common.stopped(run)) if common.stopped(run) else (
            "collapsed, accuracy fell" if warn and fell else "collapsed onto the right answers" if warn else
            "accuracy fell" if fell else "fine")
        rows.append(["sweep", name, len(steps), f"{b.get(f'avg@{k}', np.nan):.3f}",
                     f"{a.get(f'avg@{k}', np.nan):.3f}", verdict + (f" (warning at step {warn})" if warn else "")])
    for ax, title in zip(axes, ("accuracy of the rollouts (true answers: only labels tell)", "token entropy (label-free)",
                                "majority ratio (label-free)")):
        ax.set_title(f"(b) {title}", fontsize=9)
        ax.set_xlabel("training step")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    return rows


if __name__ == "__main__":
    main()
