"""Experiment tracking: the run folder mirrored into TensorBoard and / or Weights & Biases (--report-to).

    python train.py --report-to tensorboard          # OUT/tensorboard/; then: tensorboard --logdir runs
    python train.py --report-to wandb                # OUT/wandb/: online when logged in, else offline
    python train.py --report-to tensorboard wandb

Why: people who train with TRL (report_to), verl (trainer.logger) or nanoGPT (wandb_log) watch and
compare their runs there. The run folder stays the record; a tracker receives the same numbers under
the same names:
  - each line of metrics.jsonl at its step: numbers as scalars, words (`update`) as text;
  - each evaluation (before training at step 0, --eval-every's at step K, after training at the last
    step) as eval/<metric> (eval/avg@16, eval/maj@16, eval/greedy, ...): one curve over the run, as in
    curves.png; and its table with the 95% intervals, beside the evaluation before training;
  - the resolved flags (config.json) as the run's hyper-parameters.
Nothing here runs, and neither package is imported, without --report-to (config.py checks that the
packages named are installed, before anything loads).

W&B with no login (no WANDB_API_KEY, no `wandb login` entry in ~/.netrc) and no WANDB_MODE logs
offline, and says so in one line: `wandb sync OUT/wandb/offline-run-*` uploads it later.

Resume: a resumed run goes on in the same tracker run. TensorBoard: a new event file whose first
event purges every step after the checkpoint (purge_step), so what a killed run logged past its
checkpoint is dropped when read, and each step appears once. W&B: the run id kept in OUT/wandb_id.txt
is resumed, and given the folder's history from the first step W&B does not hold (online: above the
run's last step, so steps a killed run logged past its checkpoint keep their first values, the same
numbers on CPU, where a resumed run repeats the uninterrupted one exactly; offline: all of it, since
a SIGKILLed process's offline file may be empty). A tracker that was not there before (a run resumed
with a new --report-to) is first given the run's history from the folder.

torchrun: rank 0 alone reports, as it alone writes metrics.jsonl.
"""
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from eval import markdown_table, summary_metrics, summary_table

WANDB_ID = "wandb_id.txt"  # in the run folder: the W&B run that a resumed run goes on in


def start(args, out: Path, step: int, before: dict) -> "Tracker":
    """The trackers of --report-to for the run in `out`, whose steps up to `step` are done (0: a new run),
    and `before`, its evaluation before training (for the tables); on rank 0 only. Each tracker is first
    given what it may lack of the run's history up to `step` (its `since`: a new one, everything, which
    for a new run is the evaluation before)."""
    import dist

    if not args.report_to or not dist.is_main():
        return Tracker([], before)
    backends = [TensorBoard(args, out, step) if name == "tensorboard" else WandB(args, out, step) for name in args.report_to]
    for backend in backends:
        Tracker([backend], before).replay(out, backend.since, step)
    return Tracker(backends, before)


class Tracker:
    """What train.py calls: log(metrics) each step, log_eval(tag, summary, step) after each evaluation,
    close() at the end. With no backends (no --report-to, or not rank 0) each call does nothing."""

    def __init__(self, backends: list, before: dict):
        self.backends, self.before = backends, before

    def log(self, metrics: dict) -> None:
        """One line of metrics.jsonl at its step (None, a metric that does not apply this step, is left out)."""
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}
        words = {k: v for k, v in metrics.items() if isinstance(v, str)}
        for b in self.backends:
            b.log(numbers, words, metrics["step"])

    def log_eval(self, tag: str, summary: dict, step: int) -> None:
        """An evaluation (tag: before, during, after) at `step`: eval/<metric>, and its table as eval_<tag>,
        beside the evaluation before training. {} (none made, or not rank 0): nothing."""
        if not summary or not self.backends:
            return
        columns = {"before": summary} if tag == "before" else {"before": self.before, f"{tag} (step {step})": summary}
        rows = summary_table({k: v for k, v in columns.items() if v})
        for b in self.backends:
            b.log({f"eval/{m}": v for m, v in summary_metrics(summary).items()}, {}, step)
            b.table(f"eval_{tag}", rows, step)

    def replay(self, out: Path, first: int, last: int) -> None:
        """The run folder's history from step `first` to `last`, in step order: metrics.jsonl's lines and
        the evaluations (before: step 0; --eval-every's)."""
        from monitor import evaluations, read_steps

        lines = [(m["step"], 0, m) for m in read_steps(out) if first <= m["step"] <= last]
        points = [(p["step"], 1, p) for p in evaluations(out, upto=last) if p["step"] >= first]
        for s, kind, x in sorted(lines + points, key=lambda e: e[:2]):  # a step's metrics, then its evaluation
            if kind == 0:
                self.log(x)
            else:
                self.log_eval("before" if s == 0 else "during", x, s)

    def close(self) -> None:
        for b in self.backends:
            b.close()


class TensorBoard:
    """OUT/tensorboard/: an event file per process that wrote the run (a resumed run adds one)."""

    def __init__(self, args, out: Path, step: int):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = out / "tensorboard"
        self.new = not any(folder.glob("events.out.tfevents.*"))
        self.since = 0 if self.new else step + 1  # what it lacks: all, or nothing (each step was flushed as logged)
        # Each file opens with a session start (purge_step): a reader takes a start after the first as a
        # restart and drops every step from it on, so the resumed file drops what followed the checkpoint
        self.writer = SummaryWriter(str(folder), purge_step=0 if self.new else step + 1)
        if self.new:  # the flags as hyper-parameters (HPARAMS tab); lists and such as their text
            flags = {k: v if v is None or isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}
            for summary in hparams(flags, {}):
                self.writer.file_writer.add_summary(summary)

    def log(self, numbers: dict, words: dict, step: int) -> None:
        for k, v in numbers.items():
            self.writer.add_scalar(k, v, step)
        for k, v in words.items():
            self.writer.add_text(k, v, step)
        self.writer.flush()  # on disk at once, as metrics.jsonl: a killed run loses no step it logged

    def table(self, name: str, rows: list[list[str]], step: int) -> None:
        self.writer.add_text(name, markdown_table(rows), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """OUT/wandb/ (W&B's own folder), the run id in OUT/wandb_id.txt; project $WANDB_PROJECT or nanottrl,
    named after the run folder."""

    def __init__(self, args, out: Path, step: int):
        import wandb

        self.wandb, self.new = wandb, not (out / WANDB_ID).exists()
        mode = None  # W&B's own choice: $WANDB_MODE, else online
        if "WANDB_MODE" not in os.environ and not wandb_login():
            mode = "offline"
            print(f"wandb: no W&B login (WANDB_API_KEY or `wandb login`): logging offline in {out / 'wandb'}; "
                  f"upload later with `wandb sync {out / 'wandb'}/offline-run-*`")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "nanottrl"), name=out.name, dir=str(out),
                              config=vars(args), mode=mode, id=None if self.new else (out / WANDB_ID).read_text().strip(),
                              resume=None if self.new else "allow")
        (out / WANDB_ID).write_text(self.run.id + "\n")
        # What it may lack: every step from the first one W&B does not hold (run.step: 0 for a new run, and
        # offline, where W&B cannot ask its server; a SIGKILLed process's offline file may hold nothing, as
        # W&B's service writes it in buffers). Online, a resumed run continues above the run's last step.
        self.since = min(self.run.step, step)

    def log(self, numbers: dict, words: dict, step: int) -> None:
        self.run.log({**numbers, **words}, step=step)

    def table(self, name: str, rows: list[list[str]], step: int) -> None:
        self.run.log({name: self.wandb.Table(columns=rows[0], data=rows[1:])}, step=step)

    def close(self) -> None:
        self.run.finish()


def wandb_login() -> bool:
    """Whether W&B has credentials: $WANDB_API_KEY (or an identity token file), or the entry `wandb login`
    writes in ~/.netrc ($NETRC) for the W&B host ($WANDB_BASE_URL, default api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except FileNotFoundError:
        return False
