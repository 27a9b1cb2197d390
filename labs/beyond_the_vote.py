"""Lab 1 (TTRL's first question, "how good can it get?"): does TTRL climb above its own training
signal, and how close does it come to RL that is told the true answers?

    python labs/beyond_the_vote.py            # 6 runs on tiny-math, about 5 minutes on 2 CPU cores
    python labs/beyond_the_vote.py --quick    # a smoke test, under a minute

TTRL's reward is the majority vote of N samples, so the start model's maj@N is the signal it trains
on. Its claim: the trained model's single sample (avg@k) ends above that line. Its upper bound: the
same RL with the reward read from the true answers (`train.py --reward truth`, a baseline that
needs labels), which the paper calls RL "with leakage". Both are run on the same questions for
--seeds seeds, evaluated every --eval-every steps (train.py --eval-every: eval_steps.jsonl).

Figure: avg@16 over training, TTRL vs truth-RL (mean over seeds, the seeds' range shaded), with the
start model's maj@16 as the dashed line. Table: the start model and both methods after training,
avg@16 and maj@16 with 95% intervals over questions (each question averaged over the seeds).
"""
import numpy as np

import common

METHODS = {"TTRL (majority vote)": "majority", "RL on true answers (baseline)": "truth"}


def flags(ap):
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of each method")
    ap.add_argument("--eval-every", type=int, default=8, help="steps between evaluations during training")


def main():
    args = common.parse(__doc__, "beyond_the_vote", flags)
    base = ["--engine", "hf", "--eval-every", str(args.eval_every)]
    if args.quick:  # 16 questions, 2 steps, 4 votes: only that the lab runs
        from data import tinymath
        data = common.data_file(args, tinymath.test_split()[:16], "quick")
        base = ["--engine", "hf", "--data", str(data), "--max-steps", "2", "--eval-every", "1", "--eval-k", "4",
                "--n-votes", "4", "--n-train", "4", "--prompts-per-step", "4"]
        args.seeds = args.seeds[:1]
    runs = {m: [common.train(args, f"{mode}-seed{s}", base + ["--reward", mode, "--seed", str(s)]) for s in args.seeds]
            for m, mode in METHODS.items()}

    k = common.load_config(runs[next(iter(METHODS))][0])["eval_k"]
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method, folders), color in zip(runs.items(), ["C0", "C2"]):
        curves = [common.curve(run) for run in folders]
        x = [p["step"] for p in curves[0]]
        y = np.array([[p[f"avg@{k}"] for p in c] for c in curves])  # (seeds, evaluations)
        ax.plot(x, y.mean(0), marker="o", ms=3, c=color, label=f"{method}: avg@{k}")
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2)
    start_maj = np.mean([common.evaluation(run, "before")[f"maj@{k}"] for folders in runs.values() for run in folders])
    ax.axhline(start_maj, ls="--", c="k", label=f"start model's maj@{k}: TTRL's training signal")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"accuracy (avg@{k}: one sample at T = 0.6)")
    ax.set_title(f"TTRL vs RL on the true answers (tiny-math; {len(args.seeds)} seed(s), range shaded)")
    ax.legend(fontsize=8, loc="lower right")

    rows = []
    every = [run for folders in runs.values() for run in folders]
    rows.append(["start model"] + [common.mean_ci(common.per_question(every, "before", m)) for m in (f"avg@{k}", f"maj@{k}")])
    for method, folders in runs.items():
        rows.append([method] + [common.mean_ci(common.per_question(folders, "after", m)) for m in (f"avg@{k}", f"maj@{k}")])
    for method, folders in runs.items():
        finals = [common.evaluation(run, "after")[f"avg@{k}"] for run in folders]
        rows.append([f"{method}, each seed"] + [", ".join(f"{v:.3f}" for v in finals), ""])
    common.table(args, ["", f"avg@{k} [95% CI]", f"maj@{k} [95% CI]"], rows,
                 f"Means over {len(args.seeds)} seeds, intervals: bootstrap over the questions (each question's score "
                 f"averaged over the seeds). TTRL's claim holds where its avg@{k} is above the start model's maj@{k}.")
    common.save(args, fig)


if __name__ == "__main__":
    main()
