"""Watching a run: each step's metrics (step 7), collapse warnings, and the curves afterwards.

    python monitor.py runs/<run>                      # (re)draw runs/<run>/curves.png from its metrics.jsonl
    python monitor.py --compare runs/a runs/b         # several runs on one figure (compare.png), tables side by side

step_metrics is where the true answers are read, for monitoring only: label accuracy (is the
pseudo-label right?), reward accuracy (does a pseudo-reward >= 0.5 agree with the true reward?) and
the true reward. Every other metric is label-free.

Collapse. Test-time RL rewards agreement, so its failure mode is a policy that agrees with itself
on everything: TTRV's long runs lost accuracy that way. The signals, per step: the policy's mean
token entropy, the mean number of distinct answers per question, the majority ratio and the mean
response length. CollapseMonitor warns when entropy or distinct answers stay under their floors
for `patience` consecutive steps (once per streak). A collapsed run has no learning signal left
(unanimous groups have zero advantage); if accuracy is high it has converged, if not it is
reinforcing a wrong consensus, and only the labelled evaluation can tell which.
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

import dist
from answers import answer_entropy


def step_metrics(result: dict, truths: list[str | None], checker, args, step: int, epoch: float, lr: float,
                 nonfinite_skips: int) -> dict:
    """One line of metrics.jsonl from train.ttrl_step's result. The truth-based metrics (label_acc,
    reward_acc, true_reward) cover the groups whose question has a true answer and are absent when none
    has (labelled_groups counts them when only some have). torchrun: every rank's groups are gathered
    in step order, so the numbers are those of the whole step (one process: its own)."""
    stats, rewards, batch = result["stats"], result["rewards"], result["batch"]  # rewards (B, N)
    per_group = dist.all_gather_shards([
        {"true": None if truth is None else [float(checker(a, truth)) for a in answers],
         "label_ok": None if truth is None else checker(label, truth), "vote": vote,
         "len": [len(r.ids) for r in group], "truncated": [r.truncated for r in group]}
        for group, answers, vote, label, truth in
        zip(result["groups"], result["answers"], result["votes"], result["labels"], truths)])
    train_rewards = rewards[:, :args.n_train]  # (B, M)
    m = {
        "step": step, "epoch": round(epoch, 3), "lr": lr,
        "loss": stats["loss"], "reward_mean": train_rewards.mean().item(), "reward_std": train_rewards.std().item(),
        "zero_std_frac": (train_rewards.std(1) == 0).float().mean().item(),
        "majority_ratio": float(np.mean([e["vote"].majority_ratio for e in per_group])),
        "distinct_answers": float(np.mean([e["vote"].n_distinct for e in per_group])),
        "answer_entropy": float(np.mean([answer_entropy(e["vote"]) for e in per_group])),
    }
    labelled = [i for i, e in enumerate(per_group) if e["true"] is not None]
    if labelled:
        true_rewards = np.array([per_group[i]["true"] for i in labelled])  # (labelled groups, N)
        m["label_acc"] = float(np.mean([per_group[i]["label_ok"] for i in labelled]))
        # does the pseudo-reward (>= 0.5 counts as "right") agree with the true reward?
        m["reward_acc"] = float(((rewards.cpu().numpy()[labelled] >= 0.5) == true_rewards).mean())
        m["true_reward"] = float(true_rewards.mean())
        if len(labelled) < len(per_group):
            m["labelled_groups"] = len(labelled)
    return {
        **m, "clip_frac": dist.all_mean(stats["clip_frac"]), "kl": dist.all_mean(stats["kl"]),
        # the sampler (vLLM) and the trainer compute the same policy with different kernels: how far apart?
        "sampler_gap": dist.masked_mean((result["logp"] - batch.sampler_logp).abs(), batch.mask),
        "entropy": dist.masked_mean(result["entropy"], batch.mask), "grad_norm": stats["grad_norm"],
        "weight_change": stats["weight_change"],
        "response_len": float(np.mean([n for e in per_group for n in e["len"]])),
        "truncated_frac": float(np.mean([t for e in per_group for t in e["truncated"]])),
        "truncated_trained": sum(sum(e["truncated"][:args.n_train]) for e in per_group), "update": stats["update"],
        "nonfinite_skips": nonfinite_skips, **result["times"],
    }


def group_lines(result: dict, questions: list[int], truths: list[str | None], step: int) -> list[dict]:
    """--log-groups: one groups.jsonl line per group of the step: the question's index in the data, the
    N answers, the pseudo-label, each reward, and the true answer where there is one (for reading;
    training never saw it). torchrun: every rank's groups, in step order."""
    mine = [{"question": q, "answers": a, "label": label, "truth": t}
            for q, a, label, t in zip(questions, result["answers"], result["labels"], truths)]
    return [{"step": step, **g, "rewards": [round(float(r), 6) for r in rewards]}
            for g, rewards in zip(dist.all_gather_shards(mine), result["rewards"].tolist())]


def jsonable(m: dict) -> dict:
    """NaN and inf as null: metrics.jsonl stays JSON (a wrecked update's loss is NaN; bare NaN is not JSON)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in m.items()}


class CollapseMonitor:
    def __init__(self, entropy_floor: float, distinct_floor: float, patience: int, history: list[dict] = ()):
        """history: the steps already logged (a resumed run's metrics.jsonl): the streak as it stood then."""
        self.entropy_floor, self.distinct_floor, self.patience = entropy_floor, distinct_floor, patience
        self.streak = 0
        for m in history:
            self.check(m)

    def check(self, m: dict) -> str | None:
        """m: one step's metrics. Returns the warning text on the step a streak reaches `patience`."""
        low = m["entropy"] < self.entropy_floor or m["distinct_answers"] < self.distinct_floor
        self.streak = self.streak + 1 if low else 0
        if self.streak != self.patience:
            return None
        return (f"possible collapse: for {self.patience} steps entropy {m['entropy']:.4f} (floor {self.entropy_floor}) "
                f"or distinct answers per question {m['distinct_answers']:.2f} (floor {self.distinct_floor}); "
                f"majority ratio {m['majority_ratio']:.2f}, response length {m['response_len']:.1f}")


PANELS = ["reward_mean", "true_reward", "label_acc", "reward_acc", "majority_ratio", "distinct_answers", "answer_entropy",
          "entropy", "response_len", "truncated_frac", "zero_std_frac", "kl", "clip_frac", "grad_norm", "sampler_gap", "lr"]


def read_steps(out: Path) -> list[dict]:
    """metrics.jsonl: one dict per step ([] when there is none)."""
    return [json.loads(line) for line in open(out / "metrics.jsonl")] if (out / "metrics.jsonl").exists() else []


def evaluations(out: Path, upto: int | None = None) -> list[dict]:
    """The run's evaluations in step order: eval_before.json at step 0, eval_steps.jsonl (--eval-every),
    eval_after.json at the last step of metrics.jsonl; those that exist. upto: those made by that step
    in a run still going (a checkpoint's, a resumed run's), eval_after.json left out."""
    points = []
    if (out / "eval_before.json").exists():
        points.append({"step": 0, **json.loads((out / "eval_before.json").read_text())})
    if (out / "eval_steps.jsonl").exists():
        points += [json.loads(line) for line in open(out / "eval_steps.jsonl")]
    if upto is not None:
        return [p for p in points if p["step"] <= upto]
    if (out / "eval_after.json").exists() and (out / "metrics.jsonl").exists():
        last = [m["step"] for m in read_steps(out)][-1:] or [0]
        points.append({"step": last[0], **json.loads((out / "eval_after.json").read_text())})
    return points


def plot_evaluations(ax, points: list[dict]) -> None:
    """avg@k, maj@k and greedy accuracy at each evaluation (95% intervals as bars), and the start
    model's maj@k as a dashed line: TTRL's claim is that avg@k climbs above it."""
    k = next((m.split("@")[1] for p in points for m in p if m.startswith("avg@")), None)
    if k is None:
        ax.text(0.5, 0.5, "no evaluation with true answers", ha="center", va="center", transform=ax.transAxes)
    for metric in ([f"avg@{k}", f"maj@{k}", "greedy"] if k else []):
        xs = [p for p in points if metric in p]
        lo_hi = [p["ci95"].get(metric, [p[metric]] * 2) for p in xs]
        ax.errorbar([p["step"] for p in xs], [p[metric] for p in xs], marker="o", ms=3, capsize=2, label=metric,
                    yerr=[[p[metric] - lh[0] for p, lh in zip(xs, lo_hi)], [lh[1] - p[metric] for p, lh in zip(xs, lo_hi)]])
    if k and points[0]["step"] == 0 and f"maj@{k}" in points[0]:
        ax.axhline(points[0][f"maj@{k}"], ls="--", c="k", lw=0.8, label=f"start model's maj@{k}")
    if k:
        ax.legend(fontsize=7)
    ax.set_title("evaluation accuracy")
    ax.set_xlabel("step")


def plot_curves(out: Path, args=None) -> None:
    """curves.png: the evaluations' accuracy (plot_evaluations), then one panel per metric; collapse
    floors dashed, steps with a warning or a skipped update marked (red / grey vertical lines)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_steps(out)
    if not rows:
        return
    floors = {"entropy": getattr(args, "collapse_entropy", None), "distinct_answers": getattr(args, "collapse_distinct", None)}
    fig, axes = plt.subplots(5, 4, figsize=(16, 16))
    plot_evaluations(axes.flat[0], evaluations(out))
    for ax in axes.flat[1 + len(PANELS):]:
        ax.axis("off")
    x = [r["step"] for r in rows]
    for ax, k in zip(axes.flat[1:], PANELS):
        ax.plot(x, [r.get(k, float("nan")) for r in rows])
        if floors.get(k) is not None:
            ax.axhline(floors[k], ls="--", c="r", lw=0.8)
        for r in rows:
            if r.get("collapse_warning"):
                ax.axvline(r["step"], c="r", alpha=0.3)
            elif r.get("update", "ok") != "ok":
                ax.axvline(r["step"], c="grey", alpha=0.2)
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=80)
    plt.close(fig)


def compare(runs: list[Path], metrics: list[str] | None, figure: Path) -> str:
    """Several run folders side by side, for users who run no tracker: one figure (each run's avg@k at its
    evaluations, its start model's maj@k dashed, then one panel per metric of metrics.jsonl, a line per
    run, each run one colour) and their evaluations before and after training as one table, returned in
    markdown. metrics: names of metrics.jsonl (default: curves.png's panels that some run has)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval import markdown_table, summary_table

    for run in runs:
        if not (run / "metrics.jsonl").exists():
            raise SystemExit(f"--compare {run}: not a train.py run folder (no metrics.jsonl)")
    steps = {run: read_steps(run) for run in runs}
    have = dict.fromkeys(k for rows in steps.values() for r in rows for k, v in r.items()
                         if k != "step" and isinstance(v, (int, float)))
    unknown = [m for m in metrics or [] if m not in have]
    if unknown:
        raise SystemExit(f"--metrics {' '.join(unknown)}: not in these runs' metrics.jsonl, which have {', '.join(have)}")
    metrics = metrics or [m for m in PANELS if m in have]
    cols = min(4, 1 + len(metrics))
    fig, axes = plt.subplots(math.ceil((1 + len(metrics)) / cols), cols, figsize=(4 * cols, 3.3 * math.ceil((1 + len(metrics)) / cols)),
                             squeeze=False)
    for i, run in enumerate(runs):
        points = evaluations(run)
        k = next((m.split("@")[1] for p in points for m in p if m.startswith("avg@")), None)
        if k:
            xs = [p for p in points if f"avg@{k}" in p]
            axes.flat[0].plot([p["step"] for p in xs], [p[f"avg@{k}"] for p in xs], marker="o", ms=3, c=f"C{i}")
            if points[0]["step"] == 0 and f"maj@{k}" in points[0]:
                axes.flat[0].axhline(points[0][f"maj@{k}"], ls="--", c=f"C{i}", lw=0.8)
        for ax, m in zip(axes.flat[1:], metrics):
            rows = [r for r in steps[run] if isinstance(r.get(m), (int, float))]
            ax.plot([r["step"] for r in rows], [r[m] for r in rows], c=f"C{i}")
    for ax, title in zip(axes.flat, ["evaluation avg@k (dashed: start maj@k)"] + metrics):
        ax.set_title(title)
        ax.set_xlabel("step")
    for ax in axes.flat[1 + len(metrics):]:
        ax.axis("off")
    fig.legend([plt.Line2D([], [], c=f"C{i}") for i in range(len(runs))], [str(r) for r in runs], loc="upper center",
               ncol=min(len(runs), 4))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(figure, dpi=80)
    plt.close(fig)
    read = lambda path: json.loads(path.read_text()) if path.exists() else {}  # noqa: E731
    return markdown_table(summary_table({f"{run} {tag}": read(run / f"eval_{tag}.json") for run in runs for tag in ("before", "after")}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a train.py run folder: (re)draw its curves.png")
    ap.add_argument("--compare", nargs="+", metavar="RUN", help="several run folders: their metrics on one figure (--out) "
                    "and their evaluations before and after training side by side")
    ap.add_argument("--metrics", nargs="+", metavar="METRIC", help="--compare: the metrics of metrics.jsonl to draw "
                    "(default: curves.png's panels)")
    ap.add_argument("--out", default="compare.png", help="--compare: the figure's path (default: compare.png)")
    args = ap.parse_args()
    if (args.run is None) == (args.compare is None):
        ap.error("give one run folder (its curves.png), or --compare RUN_A RUN_B ...")
    if args.compare:
        print(compare([Path(r) for r in args.compare], args.metrics, Path(args.out)))
        print(f"figure: {args.out}")
        raise SystemExit
    run = Path(args.run)
    if not (run / "metrics.jsonl").exists():
        ap.error(f"{run}: not a train.py run folder (no metrics.jsonl)")
    cfg = run / "config.json"
    plot_curves(run, argparse.Namespace(**json.loads(cfg.read_text())) if cfg.exists() else None)
    print(run / "curves.png")
