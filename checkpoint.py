"""Run state on disk: checkpoints a crash cannot corrupt, and resuming exactly where a run stopped.

    python train.py --save-every 5 --out runs/a      # checkpoints/step_000005/, step_000010/, ...
    (kill -9 at any moment)
    python train.py --resume runs/a                   # continues from the newest complete checkpoint

A checkpoint folder holds the policy in HF format (from_pretrained and eval.py read it) and
trainer_state.pt: optimizer and LR-scheduler state, the step, the remaining data order and every
RNG state (python, numpy, torch, cuda). Sampling seeds are derived from (seed, step), so a resumed
run on CPU repeats the uninterrupted one exactly (tests/infra/test_resume.py checks this).

Atomic: a checkpoint is written as step_N.tmp/ and renamed to step_N/ once complete. Rename is
atomic on POSIX, so a folder named step_N is always whole; a *.tmp folder is a write cut short and is
never loaded (it is removed on the next save).
Disk: trainer_state.pt is 2x the model (AdamW's two moments; 12 GB for a 1.5B model), so only the
newest checkpoint keeps it; --keep-checkpoints bounds how many model copies stay (0 = all).

Several processes (torchrun, dist.py): rank 0 writes the checkpoint, holding the whole weights and
AdamW state (FSDP gathers them first) and every rank's RNG states; on --resume every rank loads the
same folder and takes its own RNG states back.

Resuming: the run's config.json is the source of truth. Flags given next to --resume must equal it,
except RESUMABLE ones (how to run, not what to compute): a differing key is an error naming it.
metrics.jsonl is cut back to the checkpoint's step, so every step appears in it exactly once.
"""
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

# Flags that may change between a run and its resumption: they change speed or memory, not the math.
RESUMABLE = {"resume", "out", "save_every", "keep_checkpoints", "gen_batch", "vllm_kv_gib", "vllm_gpu_memory",
             "micro_batch", "device", "engine", "vllm_sleep", "dist_timeout"}
STATE = "trainer_state.pt"


def write_model(folder: Path, model, tok, extra_files=(), state: dict | None = None,
                texts: dict[str, str] | None = None, weights: dict | None = None) -> None:
    """An HF-format folder (+ trainer_state.pt when state is given, + small text files `texts`:
    name -> content), written as folder.tmp and renamed. Also builds the embedded models' cache.
    weights: the full state dict to write instead of the module's own (a sharded FSDP module's)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, **({} if weights is None else {"state_dict": weights}))
    tok.save_pretrained(tmp)
    for f in extra_files:
        shutil.copy(f, tmp)
    for name, content in (texts or {}).items():
        (tmp / name).write_text(content)
    if state is not None:
        torch.save(state, tmp / STATE)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def save(run: Path, step: int, model, tok, opt_state: dict, sched, order: list[int], extra_files=(), keep: int = 0,
         weights: dict | None = None, rngs: list[dict] | None = None) -> Path:
    """Write checkpoints/step_{step}/ atomically; drop older trainer states and, with keep > 0, old folders.
    opt_state: the optimizer's (full) state dict; rngs: every rank's rng_state() (default: this process's)."""
    folder = run / "checkpoints" / f"step_{step:06d}"
    for stale in folder.parent.glob("*.tmp"):  # leftovers of a write cut short
        shutil.rmtree(stale)
    rngs = rngs or [rng_state()]
    state = {"step": step, "order": order, "optimizer": opt_state, "scheduler": sched.state_dict(), "rng": rngs[0]}
    if len(rngs) > 1:
        state["rng_ranks"] = rngs
    write_model(folder, model, tok, extra_files, state, weights=weights)
    done = complete(run)
    for old in done[:-1]:  # only the newest checkpoint needs the optimizer state
        (old / STATE).unlink(missing_ok=True)
    if keep > 0:
        for old in done[:-keep]:
            shutil.rmtree(old)
    return folder


def complete(run: Path) -> list[Path]:
    """Whole checkpoint folders, oldest first (a *.tmp folder is never one)."""
    return sorted(p for p in (run / "checkpoints").glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))


def latest(run: Path) -> Path | None:
    """The newest checkpoint that can be resumed from (it holds the trainer state)."""
    resumable = [p for p in complete(run) if (p / STATE).is_file()]
    return resumable[-1] if resumable else None


def restore(folder: Path, sched, rank: int = 0, world: int = 1) -> tuple[int, list[int], dict]:
    """Load the scheduler and this rank's RNG states (the model is loaded from the folder itself).
    Returns (step, remaining data order, optimizer state dict: the caller loads it, see dist.py)."""
    state = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    sched.load_state_dict(state["scheduler"])
    ranks = state.get("rng_ranks", [state["rng"]])
    if len(ranks) != world:  # each rank continues its own random streams
        raise SystemExit(f"--resume: {folder} was written by {len(ranks)} process(es), this run has {world}; "
                         f"resume with as many (torchrun --nproc_per_node {len(ranks)})")
    rng = ranks[rank]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state["step"], state["order"], state["optimizer"]


def trim_metrics(path: Path, step: int) -> None:
    """Keep the metrics lines of steps <= step (and drop a line cut short by a crash), atomically."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed run can be half-written
        if row.get("step", 0) <= step:
            keep.append(line + "\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(keep))
    tmp.replace(path)


def resume_config(run: str, given: dict, current: dict) -> dict:
    """The config to resume with: the run's config.json, plus the RESUMABLE flags given now.
    given: flags on the command line; current: every flag's value now. A given flag that differs
    from the run's value and is not RESUMABLE is an error naming the keys."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise SystemExit(f"--resume {run}: no config.json there (not a train.py run folder)")
    saved = json.loads(path.read_text())
    differ = [k for k, v in given.items() if k not in RESUMABLE and k in saved and saved[k] != v]
    if differ:
        raise SystemExit(f"--resume {run}: incompatible flags, the run used " +
                         ", ".join(f"{k}={saved[k]!r} (given {given[k]!r})" for k in differ) +
                         "; drop them to resume, or start a new run")
    unknown = sorted(set(saved) - set(current))
    if unknown:
        raise SystemExit(f"--resume {run}: config.json has keys this train.py does not know: {', '.join(unknown)}")
    return {**current, **saved, **{k: v for k, v in given.items() if k in RESUMABLE}, "resume": run, "out": run}
