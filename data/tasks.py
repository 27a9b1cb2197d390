"""The embedded tasks, in one registry: `--data` / `--model` names -> the module that owns the task.

    tiny-math    data/tinymath.py    column addition with a careless student's slips; \\boxed{} answers
    tiny-digits  data/tinydigits.py  shifted handwritten digits for a tiny LLaVA (TTRV, images)
    tiny-sounds  data/tinyaudio.py   shifted synthetic sounds for a tiny Qwen2-Audio (OP-TTRAV, free text)
    tiny-clips   data/tinyclips.py   shifted synthetic video clips for a tiny LLaVA shown frames (OP-TTRAV, video)

Every task module has the same parts: test_split() -> rows {"question", "answer", (media)};
prompt_text(question) -> the prompt its model was pre-trained on; get_model() -> the built model's
folder (built and cached on first use, data/build.py); MARKER, the file a build writes into its
folder, which tells a checkpoint's prompt format; ANSWER_FORMAT; and optionally grade(pred, truth),
the task's own checker. Adding a task = one such module + one entry in TASKS.
"""
from pathlib import Path

from data import tinyaudio, tinyclips, tinydigits, tinymath

TASKS = {"tiny-math": tinymath, "tiny-digits": tinydigits, "tiny-sounds": tinyaudio, "tiny-clips": tinyclips}


def resolve_model(name: str) -> str:
    """--model: an embedded model by task name (built on first use), else a folder or a hub name, as given."""
    if name in TASKS:
        return str(TASKS[name].get_model())
    check_path(name)
    return str(Path(name).expanduser()) if name.startswith("~") else name


def check_path(name: str) -> None:
    """A model name that only a folder on this machine can mean, and missing: one line, "no such folder"
    (transformers would take it for a hub name and complain about the name's form). Local-looking:
    absolute, ./ ../ ~/, under runs/, deeper than a hub's "org/name", or with an existing parent folder."""
    parts = Path(name).parts
    local = (Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or len(parts) > 2
             or (len(parts) == 2 and (parts[0] == "runs" or Path(parts[0]).is_dir())))
    if local and not Path(name).expanduser().exists():
        raise SystemExit(f"--model {name}: no such folder")


def embedded_format(model_dir: str) -> str | None:
    """The task name of an embedded model (or a checkpoint of one: the marker travels with it), else None."""
    return next((name for name, task in TASKS.items() if (Path(model_dir) / task.MARKER).exists()), None)


def marker_files(model_dir: str) -> list[Path]:
    """The embedded marker files in a model folder: checkpoints copy them to keep the prompt format."""
    return [Path(model_dir) / t.MARKER for t in TASKS.values() if (Path(model_dir) / t.MARKER).exists()]


def answer_format(data: str, given: str | None) -> str:
    """--answer-format, defaulting by data: the embedded task's own, else boxed (math)."""
    return given or (TASKS[data].ANSWER_FORMAT if data in TASKS else "boxed")


def checker(data: str, answer_format: str):
    """How an extracted answer is judged against the truth (evaluation and monitoring only): the
    embedded task's own checker, the math grader for boxed answers, else normalised exact match."""
    from answers import grade, grade_text

    checker = getattr(TASKS.get(data), "grade", None)
    return checker or (grade if answer_format == "boxed" else grade_text)
