"""Watching a run: collapse warnings while it trains, and the curves of metrics.jsonl afterwards.

    python monitor.py runs/<run>          # (re)draw runs/<run>/curves.png from its metrics.jsonl

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
from pathlib import Path


class CollapseMonitor:
    def __init__(self, entropy_floor: float, distinct_floor: float, patience: int):
        self.entropy_floor, self.distinct_floor, self.patience = entropy_floor, distinct_floor, patience
        self.streak = 0

    def check(self, m: dict) -> str | None:
        """m: one step's metrics. Returns the warning text on the step a streak reaches `patience`."""
        low = m["entropy"] < self.entropy_floor or m["distinct_answers"] < self.distinct_floor
        self.streak = self.streak + 1 if low else 0
        if self.streak != self.patience:
            return None
        return (f"possible collapse: for {self.patience} steps entropy {m['entropy']:.4f} (floor {self.entropy_floor}) "
                f"or distinct answers per question {m['distinct_answers']:.2f} (floor {self.distinct_floor}); "
                f"majority ratio {m['majority_ratio']:.2f}, response length {m['response_len']:.1f}")


PANELS = ["reward_mean", "true_reward", "label_acc", "reward_acc", "majority_ratio", "distinct_answers", "entropy",
          "response_len", "truncated_frac", "zero_std_frac", "kl", "clip_frac", "grad_norm", "sampler_gap", "lr"]


def plot_curves(out: Path, args=None) -> None:
    """curves.png: one panel per metric; collapse floors dashed, steps with a warning or a skipped
    update marked (red / grey vertical lines)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    if not rows:
        return
    floors = {"entropy": getattr(args, "collapse_entropy", None), "distinct_answers": getattr(args, "collapse_distinct", None)}
    fig, axes = plt.subplots(3, 5, figsize=(20, 10))
    x = [r["step"] for r in rows]
    for ax, k in zip(axes.flat, PANELS):
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a train.py run folder")
    run = Path(ap.parse_args().run)
    cfg = run / "config.json"
    plot_curves(run, argparse.Namespace(**json.loads(cfg.read_text())) if cfg.exists() else None)
    print(run / "curves.png")
