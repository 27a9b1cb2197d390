"""Lab 2 (TTRL's second question, "why does it work?"): a wrong pseudo-label still gives mostly right
rewards, when the wrong answers disagree with each other.

    python labs/wrong_labels.py            # 3 runs on hard tiny-math questions, about 1 minute on 2 CPU cores
    python labs/wrong_labels.py --quick    # a smoke test, under a minute

Where the vote is wrong, majority rewards give 1 to the rollouts that agree with the wrong label and
0 to everything else. Against the true rewards, the 0s are right for every *other* wrong answer (a
"lucky hit") and wrong only for the correct rollouts. So one group's reward accuracy is

    reward accuracy = 1 - (share of rollouts in the wrong label) - (share of correct rollouts)

which is high when the wrong answers are scattered: the paper sees label accuracy near 37% with
reward accuracy near 92% on AIME. The questions here are hard on purpose: 4-digit sums with at
least three carries, half of them with an 8+7 column (the model's weakest fact; data/tinymath.py),
so the vote is often wrong. Each step's groups are logged (train.py --log-groups: groups.jsonl,
with the true answer beside each group for reading, never for training).

Figure: left, per step, label accuracy, reward accuracy and the majority ratio (mean over seeds);
right, every group's reward accuracy against its majority ratio, wrong labels in red, with the
formula's line for a group with no correct rollout. Table: groups with a right vs a wrong label.
The lab also prints one real group with a wrong label: its answers, the label, each reward and
each true reward.
"""
import numpy as np

import common  # first: puts the repository on the path
from data import tinymath
from answers import grade


def flags(ap):
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the TTRL run")
    ap.add_argument("--questions", type=int, default=64, help="hard questions to train on")


def group_stats(g: dict) -> dict:
    """One logged group, judged against its true answer: label right?, reward accuracy (pseudo-reward
    >= 0.5 agrees with the true reward), majority ratio, share of correct rollouts."""
    true = [float(grade(a, g["truth"])) for a in g["answers"]]
    agree = [(r >= 0.5) == bool(t) for r, t in zip(g["rewards"], true)]
    return {"label_ok": grade(g["label"], g["truth"]), "reward_acc": float(np.mean(agree)),
            "majority_ratio": float(np.mean(g["rewards"])), "correct": float(np.mean(true)), "true": true}


def main():
    args = common.parse(__doc__, "wrong_labels", flags)
    data = common.data_file(args, common.hard_questions(8 if args.quick else args.questions), "hard")
    base = ["--engine", "hf", "--data", str(data), "--log-groups", "--eval-k", "4" if args.quick else "16"]
    if args.quick:
        base += ["--max-steps", "2", "--n-votes", "4", "--n-train", "4", "--prompts-per-step", "4"]
        args.seeds = args.seeds[:1]
    runs = [common.train(args, f"ttrl-seed{s}", base + ["--seed", str(s)]) for s in args.seeds]
    groups = [{**g, "seed": seed} for seed, run in zip(args.seeds, runs) for g in common.lines(run / "groups.jsonl")]
    stats = [group_stats(g) for g in groups]

    plt = common.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    per_run = [common.steps(run) for run in runs]
    n = min(len(s) for s in per_run)
    x = range(1, n + 1)
    for key, label in (("label_acc", "label accuracy"), ("reward_acc", "reward accuracy"), ("majority_ratio", "majority ratio")):
        left.plot(x, np.mean([[m[key] for m in s[:n]] for s in per_run], axis=0), marker="o", ms=3, label=label)
    left.set_xlabel("training step")
    left.set_ylabel("mean over the step's groups (and seeds)")
    left.set_ylim(0, 1.02)
    left.set_title("a wrong label still gives mostly right rewards?")
    left.legend(fontsize=8)
    for ok, color, name in ((True, "C2", "right label"), (False, "C3", "wrong label")):
        pts = [(s["majority_ratio"], s["reward_acc"]) for s in stats if s["label_ok"] == ok]
        if pts:
            right.scatter(*zip(*pts), s=12, alpha=0.5, c=color, label=f"{name} ({len(pts)} groups)")
    grid = np.linspace(0, 1, 11)
    right.plot(grid, 1 - grid, "k--", lw=0.8, label="wrong label, no correct rollout: 1 - majority ratio")
    right.set_xlabel("majority ratio (share of the group in the label)")
    right.set_ylabel("reward accuracy of the group")
    right.set_title("every logged group")
    right.legend(fontsize=8)

    rows = []
    for ok, name in ((True, "right label"), (False, "wrong label")):
        sel = [s for s in stats if s["label_ok"] == ok]
        if sel:
            rows.append([name, len(sel)] + [common.mean_ci([s[k] for s in sel]) for k in ("reward_acc", "majority_ratio", "correct")])
    rows.append(["all groups", len(stats)] + [common.mean_ci([s[k] for s in stats]) for k in ("reward_acc", "majority_ratio", "correct")])
    common.table(args, ["groups", "n", "reward accuracy [95% CI]", "majority ratio [95% CI]", "correct rollouts [95% CI]"], rows,
                 f"Label accuracy {np.mean([s['label_ok'] for s in stats]):.3f} over {len(stats)} groups ({len(runs)} seeds x "
                 f"every step). Intervals: bootstrap over the groups.")

    wrong = [(s["reward_acc"], i) for i, s in enumerate(stats) if not s["label_ok"]]
    if wrong:  # the clearest lucky hit: the wrong-label group whose rewards were right most often
        i = max(wrong)[1]
        g, s = groups[i], stats[i]
        question = common.lines(data)[g["question"]]["question"]  # groups.jsonl keeps the question's row index
        print(f"One real group (seed {g['seed']}, step {g['step']}): {question} = {g['truth']}, the vote said {g['label']}")
        print(f"  {'answer':>8} {'reward':>7} {'true':>5}  verdict")
        for a, r, t in zip(g["answers"], g["rewards"], s["true"]):
            verdict = "right" if (r >= 0.5) == bool(t) else "WRONG"
            why = "lucky hit: another wrong answer, rightly 0" if verdict == "right" and not t and r < 0.5 else ""
            print(f"  {str(a):>8} {r:>7.0f} {t:>5.0f}  {verdict} {why}")
        print(f"  reward accuracy {s['reward_acc']:.3f} with a wrong label (majority ratio {s['majority_ratio']:.3f}, "
              f"correct rollouts {s['correct']:.3f})")
    common.save(args, fig)


if __name__ == "__main__":
    main()
