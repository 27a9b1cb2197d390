"""Prompts: each question as the text (and images / audio) its model expects.

    python -m data.prompts                                          # the embedded tiny-math prompts
    python -m data.prompts --data math500 --model Qwen/Qwen2.5-Math-1.5B   # what that model will see

The embedded models have their own formats ("Q: ...\\nA:", data/tasks.py). Other models get
Qwen2.5-Math's instruction (reason step by step, answer in \\boxed{}) as the system message of their
own chat template, or as plain text when they have none. --prompt-template FILE replaces both: a .txt
file is the whole prompt with {question} in it; a .json file is a list of chat messages with
{question} in a content, rendered through the model's chat template. An image row puts an image
placeholder before the question in the user turn (the processor's chat template turns it into image
tokens); an audio row an audio placeholder. --answer-format text (open-ended QA, OP-TTRAV) asks for a
short free-text answer instead of the \\boxed{} instruction.
"""
import argparse
import json
from pathlib import Path

from data.tasks import TASKS, answer_format, embedded_format

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
OPEN_INSTRUCTION = "Answer the question in a few words."


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
    embedded: an embedded task name (its model has its own format, data/tasks.py) or None. processor: a multimodal model's
    processor, whose chat template knows the image / audio placeholders. answer_format "text" asks
    for a short free-text answer instead of Qwen2.5-Math's \\boxed{} instruction.

    str.replace, not str.format: math prompts are full of braces (\\boxed{})."""
    inputs = {**({"images": images} if images else {}), **({"audios": audios} if audios else {})}
    if isinstance(template, str):
        return {"text": template.replace("{question}", question), **inputs}
    if template is None and embedded in TASKS:
        return {"text": TASKS[embedded].prompt_text(question), **inputs}
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
    from data.files import HUB, load_rows, media_columns

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tiny-math", help=f"{', '.join([*TASKS, *HUB])}, or a .jsonl/.json/.parquet/.csv file")
    ap.add_argument("--question-key", default="question", help="column holding the question (files)")
    ap.add_argument("--answer-key", default=None, help="column holding the reference answer, optional (files)")
    ap.add_argument("--image-key", default=None, help="column holding images (files): paths or stored images")
    ap.add_argument("--audio-key", default=None, help="column holding audio clips (files): WAV paths or stored audio (data/media.py)")
    ap.add_argument("--answer-format", default=None, choices=["boxed", "text"], help="boxed: math instruction; text: a short free-text answer (default: the embedded task's own, else boxed)")
    ap.add_argument("--model", default=None, help="show prompts as this model's tokenizer renders them")
    ap.add_argument("--prompt-template", default=None, help="a .txt prompt or .json chat messages with {question}")
    args = ap.parse_args()
    rows = load_rows(args.data, args.question_key, args.answer_key, media_columns(args.image_key, args.audio_key))
    tok = None
    if args.model:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.model)
    embedded = args.data if args.model is None and args.data in TASKS else None
    print(f"{len(rows)} rows")
    for r in rows[:3]:
        p = make_prompt(r["question"], tok, embedded, load_template(args.prompt_template), r.get("images"), None,
                        r.get("audios"), answer_format(args.data, args.answer_format))
        print({k: v for k, v in r.items() if k not in ("images", "audios")}, "->", repr(p["text"]),
              f"+ {len(r.get('images', []))} image(s), {len(r.get('audios', []))} audio clip(s)")
