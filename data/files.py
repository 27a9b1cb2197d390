"""Test sets as rows: the embedded tasks, the TTRL papers' hub sets, and data files.

    python -m data.prompts --data math500            # load a set and show its first prompts

--data is one of
  tiny-math, tiny-digits, tiny-sounds, tiny-clips   the embedded tasks (data/tasks.py)
  math500 aime24 amc amc23 gsm8k        the hub data sets of the TTRL papers (HUB below), via `datasets`
  a file                                .jsonl .json .parquet .csv, also read by `datasets`; --question-key
                                        and --answer-key name its columns
Each row becomes {"question": str, "answer": str or None}. The answer is ground truth: only
evaluation and monitoring read it; the reward never does. --image-key names a column of images (file paths,
relative to the data file, or images stored by `datasets`): rows then carry "images": [PIL images].
--audio-key names a column of audio clips (WAV paths or stored audio): rows carry "audios":
[(waveform, sample_rate)]. --video-key names a column of video clips (video files, frame folders or
stored frames): rows carry "video": --video-frames RGB PIL frames, sampled uniformly. All are decoded
at load time (data/media.py): a broken file is an error naming its row and file.

Answers are optional (test-time RL trains without them; see load_rows). Bad rows: a file that does
not parse (bad JSON on some line) or lacks a named column is an error naming the file, the line or
the column: the file is wrong and guessing would hide it. A row whose question is empty is skipped
and counted (printed): it cannot be asked, and one blank row among 500 should not end a run hours in.
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

from data import media


class HubSet(NamedTuple):
    path: str
    config: str | None
    split: str
    question: str  # column names
    answer: str | None  # None: a set without answers, evaluated by label-free metrics
    note: str


# The test sets of the TTRL paper (and GSM8K), as published on the Hugging Face hub.
HUB = {
    "math500": HubSet("HuggingFaceH4/MATH-500", None, "test", "problem", "answer", "500 problems"),
    "aime24": HubSet("HuggingFaceH4/aime_2024", None, "train", "problem", "answer", "30 problems, AIME 2024 I+II"),
    "amc": HubSet("AI-MO/aimo-validation-amc", None, "train", "problem", "answer", "83 problems, TTRL's AMC"),
    "amc23": HubSet("math-ai/amc23", None, "test", "question", "answer", "40 problems, AMC 2023"),
    "gsm8k": HubSet("openai/gsm8k", "main", "test", "question", "answer", "1319 problems; answer after '####'"),
}
FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def media_columns(image_key: str | None = None, audio_key: str | None = None, video_key: str | None = None) -> dict[str, str]:
    """--image-key / --audio-key / --video-key as load_rows' extra_keys: row field -> column."""
    keys = {"images": image_key, "audios": audio_key, "video": video_key}
    return {field: key for field, key in keys.items() if key}


def rows_for(args, model: str) -> list[dict]:
    """load_rows with train.py's / eval.py's data flags. A clip's frame count, unless --video-frames
    says: what an embedded video model was pre-trained on (--model, or a checkpoint of it, or --data)."""
    from data.tasks import TASKS, embedded_format

    task = TASKS.get(model) or TASKS.get(embedded_format(model) if Path(model).is_dir() else None) or TASKS.get(args.data)
    frames = args.video_frames or getattr(task, "VIDEO_FRAMES", None)
    rows = load_rows(args.data, args.question_key, args.answer_key,
                     media_columns(args.image_key, args.audio_key, args.video_key), frames, args.video_size)
    return repeated_questions(rows, args.data, args.dedup)


def repeated_questions(rows: list[dict], name: str, drop: bool) -> list[dict]:
    """Rows whose question and media repeat an earlier row's, said in one line: kept (each copy is sampled,
    trained and evaluated, so the question weighs twice), or dropped with --dedup (the first copy stays)."""
    import hashlib

    import numpy as np

    def digest(x):  # media by content: an image, an (audio, rate) pair, a list of frames
        if isinstance(x, (list, tuple)):
            return tuple(digest(y) for y in x)
        if x is None or isinstance(x, (str, int, float)):
            return x
        return hashlib.sha1(np.ascontiguousarray(np.asarray(x)).tobytes()).hexdigest()

    def key(row):
        return row["question"], digest([v for k, v in sorted(row.items()) if k not in ("question", "answer")])
    seen, unique = set(), []
    for row in rows:
        k = key(row)  # hashes the row's media: once per row
        if k not in seen:
            seen.add(k)
            unique.append(row)
    repeats = len(rows) - len(unique)
    if repeats:
        print(f"--data {name}: {repeats} of {len(rows)} rows repeat an earlier row's question" +
              (f"; dropped (--dedup): {len(unique)} questions" if drop else
               " (kept: each copy is trained and evaluated, so it weighs more; --dedup drops them)"), flush=True)
    return unique if drop else rows


def load_rows(data: str, question_key: str = "question", answer_key: str | None = None,
              extra_keys: dict[str, str] | None = None, video_frames: int | None = None, video_size: int = 0) -> list[dict]:
    """Rows as [{"question", "answer", **extra}], "answer" None where a row has none; extra_keys maps a
    row field to a column, e.g. {"images": "image"}. Errors are one line (SystemExit) naming the flag,
    the file and the line. A video becomes video_frames frames (None: media.VIDEO_FRAMES, or an
    embedded task's own), each at most video_size pixels on its longer side (0: as stored).

    Answers are optional: test-time RL trains without them, and evaluation and monitoring then report
    the label-free metrics only (on a file where some rows have answers, the truth-based ones on those
    rows). answer_key None: the column "answer" when the file has one, else no answers; a key given and
    not found is an error (a typo should not silently turn off every accuracy). A cell holding a
    \\boxed{} (a worked solution, as MATH's) gives its last boxed content."""
    from data.tasks import TASKS  # here, not at the top: the embedded tasks import torch, flag checks need only HUB

    if data in TASKS:
        rows = TASKS[data].test_split()
        for i, row in enumerate(rows, 1):  # an embedded video task's clips go through the same frame sampling
            if "video" in row:
                row["video"] = media.open_video(row["video"], data, i, video_frames or TASKS[data].VIDEO_FRAMES, video_size)
        return rows
    if data in HUB:
        h = HUB[data]
        table = _load_hub(data, h)
        question_key, answer_key = h.question, h.answer
    elif Path(data).suffix in FILE_TYPES:
        table = _load_file(data)
        if answer_key is None and "answer" in table.column_names:
            answer_key = "answer"
    else:
        raise SystemExit(f"--data {data}: unknown name; use {', '.join([*TASKS, *HUB])}, "
                         f"or a {'/'.join(FILE_TYPES)} file")
    columns = {"question": question_key, **({"answer": answer_key} if answer_key else {}), **(extra_keys or {})}
    flags = {"question": "--question-key", "answer": "--answer-key"}
    for field, key in columns.items():
        if key not in table.column_names:
            raise SystemExit(f"--data {data}: no column {key!r} ({flags.get(field, field)}); "
                             f"columns: {', '.join(table.column_names)}")
    if "audios" in columns and getattr(table.features.get(columns["audios"]), "decode", False):
        # datasets decodes stored audio with torchcodec (a CUDA-only build; stubbed here): take the
        # raw {"bytes", "path"} instead and decode in media.py like any file
        from datasets import Audio
        table = table.cast_column(columns["audios"], Audio(decode=False))
    rows, numbers, skipped = [], [], []  # numbers: each kept row's place in the file (1-based)
    for i, r in enumerate(table, 1):
        row = {field: r[key] for field, key in columns.items()}
        row["question"], row["answer"] = _text(row["question"]), _answer(row.get("answer"), data)
        if row["question"]:
            rows.append(row)
            numbers.append(i)
        else:
            skipped.append(i)
    if skipped:
        print(f"--data {data}: skipped {len(skipped)} of {len(table)} rows with an empty question "
              f"(rows {', '.join(map(str, skipped[:10]))}{' ...' if len(skipped) > 10 else ''})")
    if not rows:
        raise SystemExit(f"--data {data}: no usable rows")
    unlabelled = sum(r["answer"] is None for r in rows)
    if unlabelled == len(rows):
        print(f"--data {data}: no answers ({'no answer column' if not answer_key else 'all empty'}): training "
              f"needs none; evaluation and monitoring report label-free metrics only")
    elif unlabelled:
        print(f"--data {data}: {len(rows) - unlabelled} of {len(rows)} questions have an answer: accuracy and the "
              f"other truth-based metrics are computed on those")
    for i, row in zip(numbers, rows):  # decoded now: a broken file is an error naming its row (media.py)
        if "images" in columns:
            row["images"] = media.open_images(row["images"], data, i)
        if "audios" in columns:
            row["audios"] = media.open_audios(row["audios"], data, i)
        if "video" in columns:
            row["video"] = media.open_video(row["video"], data, i, video_frames or media.VIDEO_FRAMES, video_size)
    return rows


def _answer(value, data: str) -> str | None:
    """A reference answer from its cell, None when there is none: GSM8K's number after "####", a
    worked solution's last \\boxed{}, else the text."""
    from answers import extract_answer

    text = _text(value)
    if data == "gsm8k":  # "... reasoning ... #### 1,234" -> "1234"
        text = text.split("####")[-1].replace(",", "").strip() if "####" in text else ""
    elif "\\boxed" in text or "\\fbox" in text:
        text = extract_answer(text) or ""
    return text or None


def _text(value) -> str:
    """A cell as text: None / NaN -> "", 142.0 -> "142" (numeric columns), else str, stripped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _load_hub(name: str, h: HubSet):
    import datasets

    try:
        return datasets.load_dataset(h.path, h.config, split=h.split)
    except Exception as e:  # offline, renamed, gated: all end the same way for the user
        raise SystemExit(f"--data {name}: could not load {h.path} from the hub ({type(e).__name__}); without "
                         f"network, pass a local copy: --data FILE.parquet --question-key {h.question} "
                         f"--answer-key {h.answer}") from None


def _load_file(data: str):
    import datasets

    path = Path(data)
    if not path.is_file():
        raise SystemExit(f"--data {data}: file not found")
    kwargs = {}
    if path.suffix in (".json", ".jsonl", ".csv"):  # text files: UTF-8, or one line naming the first bad byte
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise SystemExit(f"--data {data}: not UTF-8 text (byte {e.start:,}, line {line}: {raw[e.start:e.start + 4]!r}); "
                             f"convert it, e.g. iconv -f latin1 -t utf-8") from None
    if path.suffix == ".json":  # a list of rows, or {"data": [rows]}
        try:
            top = json.loads(text)
        except json.JSONDecodeError as e:
            raise SystemExit(f"--data {data}: not valid JSON (line {e.lineno}: {e.msg})") from None
        if isinstance(top, dict):
            if not isinstance(top.get("data"), list):
                raise SystemExit(f"--data {data}: expected a list of rows or {{\"data\": [rows]}}")
            kwargs["field"] = "data"
    elif path.suffix == ".jsonl":  # name the bad line; datasets' own error does not
        for i, line in enumerate(text.splitlines(), 1):
            try:
                if line.strip() and not isinstance(json.loads(line), dict):
                    raise SystemExit(f"--data {data}: line {i} is not a JSON object")
            except json.JSONDecodeError as e:
                raise SystemExit(f"--data {data}: line {i} is not valid JSON ({e.msg})") from None
    if path.stat().st_size == 0:
        raise SystemExit(f"--data {data}: no usable rows (empty file)")
    try:
        return datasets.load_dataset(FILE_TYPES[path.suffix], data_files=str(path), split="train", **kwargs)
    except Exception as e:
        cause = e.__cause__ or e
        raise SystemExit(f"--data {data}: could not read it as {path.suffix} ({type(cause).__name__}: "
                         f"{str(cause).splitlines()[0] if str(cause) else ''})") from None
