"""Questions and prompts: load a test set, and turn each question into the prompt a model expects.

    python data.py                                           # the embedded tiny-math questions
    python data.py --data math500                            # MATH-500 from the hub (needs network once)
    python data.py --data my.parquet --question-key problem --answer-key solution
    python data.py --data math500 --model Qwen/Qwen2.5-Math-1.5B   # show the prompts that model gets

--data is one of
  tiny-math                     the embedded synthetic task (tinymath.py)
  tiny-digits                   the embedded image task: shifted digit images (tinydigits.py)
  tiny-sounds                   the embedded audio task: shifted synthetic sounds (tinyaudio.py)
  math500 aime24 amc amc23 gsm8k  the hub data sets of the TTRL papers (HUB below), via `datasets`
  a file                        .jsonl .json .parquet .csv, also read by `datasets`; --question-key
                                and --answer-key name its columns
Each row becomes {"question": str, "answer": str}. The answer is ground truth: only evaluation and
monitoring read it; the TTRL reward never does. --image-key names a column of images (file paths,
relative to the data file, or images stored by `datasets`): rows then carry "images": [PIL images].
--audio-key names a column of audio clips (WAV paths or stored audio): rows carry "audios":
[(waveform, sample_rate)]. Both are decoded at load time (media.py): a broken file is an error naming its row.

Bad rows. A file that does not parse (bad JSON on some line) or lacks a named column is an error
naming the file, the line or the column: the file is wrong and guessing would hide it. A row whose
question or answer is empty is skipped and counted (printed): it can be neither asked nor graded,
and one blank row among 500 should not end a run hours in.

Prompts: the tiny models have their own formats ("Q: ...\\nA:"). Other models get Qwen2.5-Math's
instruction (reason step by step, answer in \\boxed{}) as the system message of their own chat
template, or as plain text when they have none. --prompt-template FILE replaces both: a .txt file
is the whole prompt with {question} in it; a .json file is a list of chat messages with {question}
in a content, rendered through the model's chat template. An image row puts an image placeholder
before the question in the user turn (the processor's chat template turns it into image tokens);
an audio row an audio placeholder. --answer-format text (open-ended QA, OP-TTRAV) asks for a short
free-text answer instead of the \\boxed{} instruction; `grader` says how such answers are judged.
"""
import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import media
import tinyaudio
import tinydigits
import tinymath

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class HubSet(NamedTuple):
    path: str
    config: str | None
    split: str
    question: str  # column names
    answer: str
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


def media_columns(image_key: str | None = None, audio_key: str | None = None) -> dict[str, str]:
    """--image-key / --audio-key as load_rows' extra_keys: row field -> column."""
    return {**({"images": image_key} if image_key else {}), **({"audios": audio_key} if audio_key else {})}


def load_rows(data: str, question_key: str = "question", answer_key: str = "answer",
              extra_keys: dict[str, str] | None = None) -> list[dict]:
    """Rows as [{"question", "answer", **extra}]; extra_keys maps a row field to a column, e.g.
    {"images": "image"}. Errors are one line (SystemExit) naming the flag, the file and the line."""
    if data == "tiny-math":
        return tinymath.test_split()
    if data == "tiny-digits":
        return tinydigits.test_split()
    if data == "tiny-sounds":
        return tinyaudio.test_split()
    if data in HUB:
        h = HUB[data]
        table = _load_hub(data, h)
        question_key, answer_key = h.question, h.answer
    elif Path(data).suffix in FILE_TYPES:
        table = _load_file(data)
    else:
        raise SystemExit(f"--data {data}: unknown name; use tiny-math, tiny-digits, tiny-sounds, {', '.join(HUB)}, "
                         f"or a {'/'.join(FILE_TYPES)} file")
    columns = {"question": question_key, "answer": answer_key, **(extra_keys or {})}
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
        row["question"], row["answer"] = _text(row["question"]), _text(row["answer"])
        if data == "gsm8k":  # "... reasoning ... #### 1,234" -> "1234"
            row["answer"] = row["answer"].split("####")[-1].replace(",", "").strip() if "####" in row["answer"] else ""
        if row["question"] and row["answer"]:
            rows.append(row)
            numbers.append(i)
        else:
            skipped.append(i)
    if skipped:
        print(f"--data {data}: skipped {len(skipped)} of {len(table)} rows with an empty question or answer "
              f"(rows {', '.join(map(str, skipped[:10]))}{' ...' if len(skipped) > 10 else ''})")
    if not rows:
        raise SystemExit(f"--data {data}: no usable rows")
    for i, row in zip(numbers, rows):  # decoded now: a broken file is an error naming its row (media.py)
        if "images" in columns:
            row["images"] = media.open_images(row["images"], data, i)
        if "audios" in columns:
            row["audios"] = media.open_audios(row["audios"], data, i)
    return rows


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
    if path.suffix == ".json":  # a list of rows, or {"data": [rows]}
        try:
            top = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SystemExit(f"--data {data}: not valid JSON (line {e.lineno}: {e.msg})") from None
        if isinstance(top, dict):
            if not isinstance(top.get("data"), list):
                raise SystemExit(f"--data {data}: expected a list of rows or {{\"data\": [rows]}}")
            kwargs["field"] = "data"
    elif path.suffix == ".jsonl":  # name the bad line; datasets' own error does not
        for i, line in enumerate(path.read_text().splitlines(), 1):
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


# The embedded models: the marker file each build writes -> its name and prompt format.
EMBEDDED = {
    "tinymath_build.json": ("tiny-math", tinymath.prompt_text),
    "tinydigits_build.json": ("tiny-digits", tinydigits.prompt_text),
    "tinyaudio_build.json": ("tiny-sounds", tinyaudio.prompt_text),
}
OPEN_INSTRUCTION = "Answer the question in a few words."


def is_tiny_math(model_dir: str) -> bool:
    return embedded_format(model_dir) == "tiny-math"


def embedded_format(model_dir: str) -> str | None:
    """'tiny-math' / 'tiny-digits' / 'tiny-sounds' for the embedded models (their own prompt formats), else None."""
    return next((name for marker, (name, _) in EMBEDDED.items() if (Path(model_dir) / marker).exists()), None)


def answer_format(data: str, given: str | None) -> str:
    """--answer-format, defaulting by data: free text for the embedded audio task, boxed otherwise."""
    return given or ("text" if data == "tiny-sounds" else "boxed")


def grader(data: str, answer_format: str):
    """How a (extracted) answer is judged against the truth: the embedded audio task's own checker,
    the math grader for boxed answers, normalised exact match for other free-text answers."""
    from rewards import grade, grade_text

    if data == "tiny-sounds":
        return tinyaudio.grade
    return grade if answer_format == "boxed" else grade_text


def load_template(path: str | None):
    """--prompt-template: None, a str (a .txt prompt) or a list of chat messages (a .json file)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--prompt-template {path}: file not found")
    if p.suffix == ".json":
        msgs = json.loads(p.read_text())
        if not (isinstance(msgs, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in msgs)):
            raise SystemExit(f"--prompt-template {path}: expected a list of {{\"role\", \"content\"}} messages")
        text = " ".join(m["content"] for m in msgs)
    else:
        msgs = text = p.read_text()
    if "{question}" not in text:
        raise SystemExit(f"--prompt-template {path}: no {{question}} placeholder")
    return msgs


def make_prompt(question: str, tokenizer, embedded: str | None, template=None, images=None, processor=None,
                audios=None, answer_format: str = "boxed") -> dict:
    """A prompt dict for sample.py: {"text"} plus {"images"} / {"audios"} for a row that has them.
    embedded: an EMBEDDED model name (its own format) or None. processor: a multimodal model's
    processor, whose chat template knows the image / audio placeholders. answer_format "text" asks
    for a short free-text answer instead of Qwen2.5-Math's \\boxed{} instruction.

    str.replace, not str.format: math prompts are full of braces (\\boxed{})."""
    inputs = {**({"images": images} if images else {}), **({"audios": audios} if audios else {})}
    if isinstance(template, str):
        return {"text": template.replace("{question}", question), **inputs}
    formats = {name: fmt for name, fmt in EMBEDDED.values()}
    if template is None and embedded in formats:
        return {"text": formats[embedded](question), **inputs}
    instruction = MATH_INSTRUCTION if answer_format == "boxed" else OPEN_INSTRUCTION
    chat = processor if inputs and processor is not None else tokenizer
    has_chat = chat is not None and chat.chat_template
    if template is not None:
        if not has_chat:
            raise SystemExit("--prompt-template: a .json (chat) template needs a model with a chat template; use a .txt one")
        msgs = [{**m, "content": m["content"].replace("{question}", question)} for m in template]
    elif has_chat:
        msgs = [{"role": "system", "content": instruction}, {"role": "user", "content": question}]
    else:
        return {"text": f"Question: {question}\n{instruction}\nAnswer:", **inputs}
    if inputs:  # the media placeholders go first in the (last) user turn
        user = msgs[-1]
        parts = [{"type": "image"}] * len(images or []) + [{"type": "audio"}] * len(audios or [])
        msgs[-1] = {**user, "content": parts + [{"type": "text", "text": user["content"]}]}
    return {"text": chat.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), **inputs}


def make_prompts(rows: list[dict], tok, model_path: str, model_flag: str, template=None, processor=None,
                 answer_format: str = "boxed") -> list[dict]:
    """make_prompt for every row, in the model's format; image / audio rows need a model that takes them."""
    for field, what, part, tower in (("images", "images", "image_processor", "vision tower"),
                                     ("audios", "audio", "feature_extractor", "audio encoder")):
        if any(r.get(field) for r in rows) and getattr(processor, part, None) is None:
            raise SystemExit(f"--data has {what} but --model {model_flag} has no {tower}")
    embedded = embedded_format(model_path)
    return [make_prompt(r["question"], tok, embedded, template, r.get("images"), processor, r.get("audios"), answer_format)
            for r in rows]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tiny-math", help=f"tiny-math, tiny-digits, tiny-sounds, {', '.join(HUB)}, or a .jsonl/.json/.parquet/.csv file")
    ap.add_argument("--question-key", default="question", help="column holding the question (files)")
    ap.add_argument("--answer-key", default="answer", help="column holding the reference answer (files)")
    ap.add_argument("--image-key", default=None, help="column holding images (files): paths or stored images")
    ap.add_argument("--audio-key", default=None, help="column holding audio clips (files): WAV paths or stored audio (media.py)")
    ap.add_argument("--answer-format", default=None, choices=["boxed", "text"], help="boxed: math instruction; text: a short free-text answer (default: text for tiny-sounds, else boxed)")
    ap.add_argument("--model", default=None, help="show prompts as this model's tokenizer renders them")
    ap.add_argument("--prompt-template", default=None, help="a .txt prompt or .json chat messages with {question}")
    args = ap.parse_args()
    rows = load_rows(args.data, args.question_key, args.answer_key, media_columns(args.image_key, args.audio_key))
    tok = None
    if args.model:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.model)
    embedded = args.data if args.model is None and args.data in ("tiny-math", "tiny-digits", "tiny-sounds") else None
    print(f"{len(rows)} rows")
    for r in rows[:3]:
        p = make_prompt(r["question"], tok, embedded, load_template(args.prompt_template), r.get("images"), None,
                        r.get("audios"), answer_format(args.data, args.answer_format))
        print({k: v for k, v in r.items() if k not in ("images", "audios")}, "->", repr(p["text"]),
              f"+ {len(r.get('images', []))} image(s), {len(r.get('audios', []))} audio clip(s)")
