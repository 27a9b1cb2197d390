"""Run state on disk: checkpoints a crash cannot corrupt, and resuming exactly where a run stopped.

    python train.py --save-every 5 --out runs/a      # checkpoints/step_000005/, step_000010/, ...
    (kill -9 at any moment)
    python train.py --resume runs/a                   # continues from the newest intact checkpoint

A checkpoint folder holds the policy in HF format (from_pretrained and eval.py read it) and
trainer_state.pt: optimizer and LR-scheduler state, the step, the remaining data order and every
RNG state (python, numpy, torch, cuda). Sampling seeds are derived from (seed, step), so a resumed
run on CPU repeats the uninterrupted one exactly (tests/infra/test_resume.py checks this).

Atomic: a checkpoint is written as step_N.tmp/ and renamed to step_N/ once complete. Rename is
atomic on POSIX, so a folder named step_N is always whole; a *.tmp folder is a write cut short and is
never loaded (it is removed on the next save).
Disk: trainer_state.pt is 2x the model (AdamW's two moments; 12 GB for a 1.5B model), so only the
newest two checkpoints keep it (two: one to fall back on); --keep-checkpoints bounds how many model
copies stay (0 = all; never fewer than two).

Damage: a file can still be cut short or emptied after the rename (a full disk, a copy cut off, a
sync that never finished). --resume checks the newest checkpoint (`problem`: every file there, JSON
parses, safetensors as long as their headers say, the trainer state's archive whole) and falls back
to the one before when it is damaged, renaming the damaged folder step_N.damaged (nothing is deleted).
With none intact it stops with one line, unless --restart starts the run over. A damaged config.json
or eval_before.json is one line naming the file; a full disk while writing is one line too
(`disk_errors`). tests/infra/test_faults.py injects each of these (`failpoint` kills mid-write).

Trust: a run folder may come from elsewhere (downloaded, shared). Nothing in it runs code:
trainer_state.pt is read with torch.load(weights_only=True), which unpickles tensors, plain Python
values and numpy's RNG array (SAFE_GLOBALS) and refuses anything else, so a hostile state is a
damaged checkpoint (`problem`) and is never loaded; the lock file is opened without following a
symbolic link, so it cannot write into a file outside the folder.

The folder itself: one train.py writes a run folder at a time (`claim` takes a lock holding the
writer's pid and host; the kernel drops it when the process ends, so a killed run's folder can be
resumed at once), and a new run never writes over an earlier one: --out on a folder that holds a run
is refused unless --resume continues it or --start-over moves its files aside (OUT.previous-<time>/).

Several processes (torchrun, dist.py): rank 0 writes the checkpoint, holding the whole weights and
AdamW state (FSDP gathers them first) and every rank's RNG states; on --resume every rank loads the
same folder and takes its own RNG states back.

Resuming: the run's config.json is the source of truth. Flags given next to --resume must equal it,
except RESUMABLE ones (how to run, not what to compute): a differing key is an error naming it.
metrics.jsonl (and eval_steps.jsonl, groups.jsonl) is cut back to the checkpoint's step, so every step
appears in it exactly once.
"""
import atexit
import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

# Flags that may change between a run and its resumption: they change speed or memory, not the math.
RESUMABLE = {"resume", "restart", "start_over", "out", "save_every", "keep_checkpoints", "gen_batch", "vllm_kv_gib", "vllm_gpu_memory",
             "micro_batch", "device", "engine", "vllm_sleep", "dist_timeout", "max_weight_change", "eval_every", "log_groups",
             "report_to"}
STATE = "trainer_state.pt"
# What a trainer state holds besides tensors and plain Python values: numpy's RNG state, an array.
# torch.load(weights_only=True) rebuilds these and refuses every other global (a payload that would run code).
SAFE_GLOBALS = [getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct, np.ndarray, np.dtype,
                type(np.dtype(np.uint32))]
KEEP_STATES = 2  # checkpoints that keep their trainer state (optimizer, RNG, data order): the newest two
LOCK = ".lock"  # in a run folder: who is writing there (pid, host); locked while that process lives


# A run's own files and folders (besides eval_*.json and eval_*.jsonl): what makes a folder hold "an
# earlier run", and all that --start-over moves. Anything else there (a tee'd log, notes, other runs'
# folders) is the user's, and is left where it is.
RUN_FILES = {"config.json", "data.json", "metrics.jsonl", "groups.jsonl", "curves.png", "checkpoints", "final", "tensorboard", "wandb",
             "wandb_id.txt"}


def run_files(out: Path) -> list[str]:
    """The names in `out` that a train.py run writes."""
    return sorted(p.name for p in out.iterdir() if p.name in RUN_FILES or fnmatch.fnmatch(p.name, "eval_*.json*"))


def claim(out: Path, resume: bool, start_over: bool = False):
    """Make `out` this process's run folder, before anything is written there. Takes the folder's lock
    (a second train.py on it stops with one line naming the first), then checks the folder holds no
    earlier run (run_files) unless `resume` continues it; start_over moves the earlier run's files to a
    sibling folder OUT.previous-<time>/ (never deleted), and refuses a folder that holds more than runs
    (the working directory or one above it, the home folder, nanoTTRL's own). Returns the open lock
    file: the lock lasts while it is open, and the kernel releases it when the process ends, however
    it ends (a SIGKILL leaves no stale lock). flock works between processes of one machine and on
    most network file systems."""
    here = out.resolve()
    if start_over and (here in Path.cwd().resolve().parents or here in (Path.cwd().resolve(), Path.home().resolve(),
                                                                         Path(__file__).resolve().parent)):
        raise SystemExit(f"--out {out} --start-over: {here} is not a run folder (the working directory or above it, the "
                         f"home folder, or nanoTTRL's own); name the run's own folder")
    if not out.exists():  # made here: if a check fails before the run writes anything, it goes again
        atexit.register(remove_if_unused, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name, a read-only file system, no permission
        raise SystemExit(f"--out {out}: cannot make the run folder there ({e.strerror or type(e).__name__}); "
                         f"choose another --out") from None
    try:  # O_NOFOLLOW: a .lock that is a symbolic link would have us truncate the file it points to
        lock = os.fdopen(os.open(out / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), "r+")
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise SystemExit(f"--out {out}: {LOCK} is a symbolic link (to {os.readlink(out / LOCK)}); a run folder's lock is a "
                         f"plain file: remove the link, or choose another --out") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "pid unknown"
        if holder.startswith(f"pid {os.getpid()} "):  # a train.main that failed earlier in this same Python process
            raise SystemExit(f"--out {out}: an earlier train.main in this Python process still holds the folder's lock "
                             f"(its error's traceback keeps it open); restart Python, or choose another --out") from None
        raise SystemExit(f"--out {out}: another train.py is writing there ({holder}); "
                         f"wait for it to finish, or choose another --out") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    lock.flush()
    earlier = run_files(out)
    if earlier and not resume:
        if not start_over:
            raise SystemExit(f"--out {out}: the folder holds an earlier run ({', '.join(earlier[:4])}"
                             f"{', ...' if len(earlier) > 4 else ''}); --resume {out} continues it, --start-over moves "
                             f"it aside (to {out.name}.previous-<time>/), or choose another --out")
        aside = out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.mkdir()
        for name in earlier:
            (out / name).rename(aside / name)
        print(f"--out {out}: the earlier run's files moved to {aside}")
    return lock


def remove_if_unused(out: Path) -> None:
    """At exit: a run folder that claim made and that holds nothing but its lock (a check failed after
    the claim, e.g. --max-tokens beyond the model's context) is removed, not left as clutter."""
    if out.is_dir() and [p.name for p in out.iterdir()] == [LOCK]:
        shutil.rmtree(out, ignore_errors=True)


class Stopped(BaseException):
    """A run stopped by a signal (Signals). A BaseException, as KeyboardInterrupt is: no `except
    Exception` on the way up swallows it."""


class Signals:
    """SIGINT (Ctrl-C), SIGTERM (a scheduler, `kill`) and SIGHUP (a closed terminal) end a run cleanly.
    During a training step (`stepping`) the first signal is noted and the step finished; train.main
    then checkpoints that step (unless it just did) and stops. Anywhere else (setup, an evaluation),
    or at a second signal, Stopped is raised at once: every write to the run folder is atomic, so a
    stop mid-write loses that write only. Leaving the `with` block turns Stopped into one line saying
    where the run stopped and how to resume it, and exit status 128 + the signal's number (130, 143,
    129, as a shell reports a process killed by it). Under torchrun, which passes a signal on to every
    rank, rank 0 alone prints (`quiet` elsewhere) and the ranks stop after the same step (`asked`)."""

    CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.signum, self.stepping, self.out, self.done, self.saved = None, False, None, 0, None
        self.quiet = os.environ.get("RANK", "0") != "0"  # torchrun's ranks 1, 2, ...: rank 0 speaks for them

    def __enter__(self):
        in_main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
        self.previous = {s: signal.signal(s, self.handle) for s in self.CAUGHT} if in_main else {}
        return self

    def handle(self, signum, frame):
        first, self.signum = self.signum is None, signum
        if first and self.stepping:
            self.say(f"\n{signal.Signals(signum).name}: finishing this step, then a checkpoint; send it again to stop at once")
            return
        raise Stopped()

    def asked(self, par) -> bool:
        """After a step: did a signal come (to any process: under torchrun every rank stops after the same step)?"""
        if par.sum(float(self.signum is not None)) > 0:
            self.signum = self.signum or signal.SIGTERM
            return True
        return False

    def where(self) -> str:
        """Where the run stopped and how to go on: the end of every line that stops a run."""
        newest = latest(self.out) if self.out else None
        if self.out is None:
            return "before the run folder was made; nothing to resume"
        if (self.out / "final").is_dir() and newest is None:  # --save-every 0: no checkpoint of the last step
            return (f"after training: the trained model is in {self.out / 'final'}; its evaluation was cut short: "
                    f"python eval.py --model {self.out / 'final'}")
        if (self.out / "final").is_dir():
            where = f"after training ({self.out / 'final'} holds the trained model), before its evaluation ended"
        elif self.saved is not None:
            where = f"after step {self.done}, checkpointed in {self.saved:.1f} s"
        else:
            where = (f"in step {self.done + 1}" if self.stepping else f"after step {self.done}" if self.done
                     else "before training") + f" ({f'newest checkpoint {newest.name}' if newest else 'no checkpoint yet'})"
        return f"{where}; resume with: python train.py --resume {self.out}"

    def say(self, line: str) -> None:
        if not self.quiet:
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                print(line, file=sys.stderr, flush=True)

    def __exit__(self, kind, value, tb):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if kind is not Stopped:
            return False
        self.say(f"{signal.Signals(self.signum).name}: stopped {self.where()}")
        raise SystemExit(128 + self.signum) from None


def write_model(folder: Path, model, tok, extra_files=(), state: dict | None = None,
                texts: dict[str, str] | None = None, weights: dict | None = None) -> None:
    """An HF-format folder (+ trainer_state.pt when state is given, + small text files `texts`:
    name -> content), written as folder.tmp and renamed. Also builds the embedded models' cache.
    weights: the full state dict to write instead of the module's own (a sharded FSDP module's)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, **({} if weights is None else {"state_dict": weights}))
        failpoint("checkpoint-model-written")
        tok.save_pretrained(tmp)
        for f in extra_files:
            shutil.copy(f, tmp)
        for name, content in (texts or {}).items():
            (tmp / name).write_text(content)
        if state is not None:
            torch.save(state, tmp / STATE)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a write cut short (full disk): give its space back
        raise
    failpoint("checkpoint-before-rename")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


@contextlib.contextmanager
def disk_errors(run: Path, what: str, needed: int = 0):
    """A full (or failing) disk ends the run with one line: what was being written, how much room it
    needed (`needed` bytes, an estimate; 0 = unknown) and how much there is, and which checkpoint is
    intact, not a traceback from deep in torch's zip writer. Checkpoints are written aside and renamed,
    so the one before is whole and --resume starts from it once there is room."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        free = shutil.disk_usage(run).free
        # torch's zip writer reports a full disk as "file write failed", "iostream error" or "unexpected pos"
        said = any(m in str(e) for m in ("write failed", "iostream error", "unexpected pos", "No space left"))
        if not (getattr(e, "errno", None) == errno.ENOSPC or said or free < max(needed, 64 * 2**20)):
            raise
        newest = latest(run)
        intact = f"the newest checkpoint, {newest.name}, is intact" if newest else "no checkpoint yet (--resume starts at step 0)"
        need = f", about {needed / 2**20:.1f} MiB needed" if needed else ""
        raise SystemExit(f"{run}: could not write {what}: the disk is full or failing ({free / 2**20:.1f} MiB free{need}); "
                         f"{intact}: free space, then python train.py --resume {run}") from None


def size_on_disk(model, with_optimizer: bool) -> int:
    """Bytes a checkpoint of `model` takes, about: its weights, plus AdamW's two moments (float32)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights + (2 * 4 * sum(p.numel() for p in model.parameters()) if with_optimizer else 0)


FAILPOINT_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Fault injection for tests/infra/: NANOTTRL_FAILPOINT=name kills this process here (SIGKILL, as a
    power cut or the OOM killer would); name@R:H kills torchrun's rank R only, the H-th time it gets
    here (the other ranks go on without it). Nothing happens without the variable."""
    spec = re.fullmatch(r"([\w-]+)(?:@(\d+))?(?::(\d+))?", os.environ.get("NANOTTRL_FAILPOINT", ""))
    if not spec or spec[1] != name or (spec[2] and spec[2] != os.environ.get("RANK")):
        return
    FAILPOINT_HITS[name] = FAILPOINT_HITS.get(name, 0) + 1
    if FAILPOINT_HITS[name] == int(spec[3] or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def save(run: Path, step: int, model, tok, opt_state: dict, sched, order: list[int], extra_files=(), keep: int = 0,
         weights: dict | None = None, rngs: list[dict] | None = None, texts: dict[str, str] | None = None) -> Path:
    """Write checkpoints/step_{step}/ atomically; drop older trainer states and, with keep > 0, old folders.
    opt_state: the optimizer's (full) state dict; rngs: every rank's rng_state() (default: this process's);
    texts: small text files written beside the weights (name -> content: the model card)."""
    folder = run / "checkpoints" / f"step_{step:06d}"
    for stale in folder.parent.glob("*.tmp"):  # leftovers of a write cut short
        shutil.rmtree(stale)
    rngs = rngs or [rng_state()]
    state = {"step": step, "order": order, "optimizer": opt_state, "scheduler": sched.state_dict(), "rng": rngs[0]}
    if len(rngs) > 1:
        state["rng_ranks"] = rngs
    write_model(folder, model, tok, extra_files, state, texts, weights=weights)
    done = complete(run)
    for old in done[:-KEEP_STATES]:  # the newest two keep the optimizer state: one to fall back on if the other is damaged
        (old / STATE).unlink(missing_ok=True)
    if keep > 0:
        for old in done[:-max(keep, KEEP_STATES)]:
            shutil.rmtree(old)
    return folder


def complete(run: Path) -> list[Path]:
    """Whole checkpoint folders, oldest first (a *.tmp or *.damaged folder is never one)."""
    return sorted(p for p in (run / "checkpoints").glob("step_*") if p.is_dir() and "." not in p.name)


def latest(run: Path) -> Path | None:
    """The newest checkpoint that holds a trainer state (it may still be damaged: see resumable)."""
    resumable = [p for p in complete(run) if (p / STATE).is_file()]
    return resumable[-1] if resumable else None


def problem(folder: Path) -> str | None:
    """What is wrong with a checkpoint folder, in a few words, or None when every file is there and
    loads: the JSON files parse, each safetensors file is as long as its header says, the trainer
    state's zip archive is whole and unpickles. Catches a file cut short, emptied or missing."""
    if not (folder / STATE).is_file():
        return f"{STATE} missing"
    if not (folder / "config.json").is_file():
        return "config.json missing"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no model weights (*.safetensors)"
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            return f"{path.name} is not valid JSON ({type(e).__name__})"
    for path in weights:
        size = path.stat().st_size
        try:
            with open(path, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(n))
            end = 8 + n + max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except Exception as e:
            return f"{path.name} has no readable header ({type(e).__name__})"
        if size < end:
            return f"{path.name} is cut short ({size:,} of {end:,} bytes)"
    try:
        zipfile.ZipFile(folder / STATE).close()  # reads the archive's directory, at its very end: a cut file fails
        load_state(folder / STATE, mmap=True)  # unpickles (plain values only); the data is read lazily
    except pickle.UnpicklingError:
        return f"{STATE} holds objects other than tensors and plain values: refused, as loading them could run code"
    except Exception as e:
        return f"{STATE} cannot be loaded ({type(e).__name__})"
    return None


def load_state(path: Path, mmap: bool = False) -> dict:
    """trainer_state.pt, unpickling nothing but tensors, plain values and SAFE_GLOBALS (never code)."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def resumable(run: Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint to resume from (None if none is), and one line per newer one found
    damaged. The damaged ones are renamed step_N.damaged, never deleted: the run's next save of the
    same step would otherwise overwrite them."""
    damaged = []
    for folder in reversed([p for p in complete(run) if (p / STATE).is_file()] or []):
        what = problem(folder)
        if what is None:
            return folder, damaged
        folder.rename(folder.with_name(folder.name + ".damaged"))
        damaged.append(f"{folder.name} is damaged ({what}): kept as {folder.name}.damaged")
    return None, damaged


def restore(folder: Path, sched, rank: int = 0, world: int = 1) -> tuple[int, list[int], dict]:
    """Load the scheduler and this rank's RNG states (the model is loaded from the folder itself).
    Returns (step, remaining data order, optimizer state dict: the caller loads it, see dist.py)."""
    state = load_state(folder / STATE)
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


def write_atomic(path: Path, text: str) -> None:
    """path's new content, whole or not at all: written beside it, then renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a write cut short (a full disk): give its space back
        raise
    tmp.replace(path)


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
    write_atomic(path, "".join(keep))


def data_fingerprint(name: str, questions: list[str]) -> dict:
    """What data.json records of a run's data: how many usable questions, and a hash of their text in order."""
    return {"data": name, "questions": len(questions), "sha256": hashlib.sha256("\n".join(questions).encode()).hexdigest()}


def check_data(out: Path, now: dict) -> None:
    """A resumed run's data against its data.json (a run from before data.json: nothing to check), so a
    data file edited between a stop and --resume is one line naming the change, never a traceback or a
    silent run on other questions."""
    path = out / "data.json"
    if not path.is_file():
        return
    was = json.loads(path.read_text())
    if now["questions"] != was["questions"]:
        change = f"{now['questions']} usable questions, the run started with {was['questions']}"
    elif now["sha256"] != was["sha256"]:
        change = f"the same {now['questions']} questions in number, but other text or another order"
    else:
        return
    raise SystemExit(f"--resume {out}: --data {now['data']} changed since the run started ({change}); put the file back "
                     f"as it was, or train on it in a new run (another --out)")


def resume_config(run: str, given: dict, current: dict) -> dict:
    """The config to resume with: the run's config.json, plus the RESUMABLE flags given now.
    given: flags on the command line; current: every flag's value now. A given flag that differs
    from the run's value and is not RESUMABLE is an error naming the keys."""
    path = Path(run) / "config.json"
    folder = Path(run)
    if folder.parent.name == "checkpoints" or folder.name == "final":  # a model folder inside a run
        owner = folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent
        raise SystemExit(f"--resume {run}: that is one of a run's model folders; resume the run: --resume {owner} "
                         "(it goes on from its newest intact checkpoint)")
    if not path.is_file():
        raise SystemExit(f"--resume {run}: no config.json there (not a train.py run folder)")
    try:
        saved = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SystemExit(f"--resume {run}: config.json is damaged ({type(e).__name__}: {e}); it holds the run's flags, "
                         f"so the run cannot be resumed without it (a copy of it, or the same flags and a new --out)") from None
    same_file = lambda a, b: Path(a).expanduser().resolve() == Path(b).expanduser().resolve()  # noqa: E731
    differ = [k for k, v in given.items() if k not in RESUMABLE and k in saved and saved[k] != v
              and not (k == "data" and same_file(saved[k], v))]  # --data: the same file, by any path
    if differ:
        raise SystemExit(f"--resume {run}: incompatible flags, the run used " +
                         ", ".join(f"{k}={saved[k]!r} (given {given[k]!r})" for k in differ) +
                         "; drop them to resume, or start a new run")
    unknown = sorted(set(saved) - set(current))
    if unknown:
        raise SystemExit(f"--resume {run}: config.json has keys this train.py does not know: {', '.join(unknown)}")
    if (folder / "final").is_dir() and ((folder / "eval_after.json").exists() or not saved.get("eval_k")):
        print(f"--resume {run}: the run is complete (final/{' and eval_after.json' if saved.get('eval_k') else ''} are "
              f"there): nothing to do. Evaluate it with python eval.py --model {run}; train more in a new run (--out)")
        raise SystemExit(0)
    return {**current, **saved, **{k: v for k, v in given.items() if k in RESUMABLE}, "resume": run, "out": run}
