"""Prompts: each question as the text (and images / audio) its model expects.

    python -m data.prompts                                          # the embedded tiny-math prompts
    python -m data.prompts --data math500 --model Qwen/Qwen2.5-Math-1.5B   # what that model will see

The embedded models have their own formats ("Q: ...\\nA:", data/tasks.py). Other models get
Qwen2.5-Math's instruction (reason step by step, answer in \\boxed{}) as the system message of their
own chat template, or as plain text when they have none. --prompt-template FILE replaces both: a .txt
file is the whole prompt with {question} in it; a .json file is a list of chat messages with
{question} in a content, rendered through the model's chat template. An image row puts an image
placeholder before the question in the user turn (the processor's chat template turns it into image
tokens); an audio row an audio placeholder; a video row a video placeholder, or one image
placeholder per frame for a vision model without a video input (make_prompt). --answer-format text
(open-ended QA, OP-TTRAV) asks for a short free-text answer instead of the \\boxed{} instruction.
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
                audios=None, answer_format: str = "boxed", video=None) -> dict:
    """A prompt dict for sample.py: {"text"} plus {"images"} / {"audios"} / {"videos"} for a row that has them.
    embedded: an embedded task name (its model has its own format, data/tasks.py) or None. processor: a multimodal model's
    processor, whose chat template knows the image / audio / video placeholders. answer_format "text" asks
    for a short free-text answer instead of Qwen2.5-Math's \\boxed{} instruction. video: one clip's frames;
    a model with a video input of its own (a video processor: Qwen2.5-VL, Qwen2.5-Omni) gets it as a
    video, any other vision model as that many images, in order (as_images).

    str.replace, not str.format: math prompts are full of braces (\\boxed{})."""
    frames_as_images = video is not None and as_images(processor)
    if frames_as_images:
        images, video = list(video) + list(images or []), None
    inputs = {**({"images": images} if images else {}), **({"audios": audios} if audios else {}),
              **({"videos": [video]} if video is not None else {})}
    if isinstance(template, str):
        return {"text": template.replace("{question}", question), **inputs}
    if template is None and embedded in TASKS:
        task = TASKS[embedded]
        text = task.prompt_text(question, frames=len(images)) if frames_as_images else task.prompt_text(question)
        return {"text": text, **inputs}
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
        parts = ([{"type": "image"}] * len(images or []) + [{"type": "video"}] * len(inputs.get("videos", []))
                 + [{"type": "audio"}] * len(audios or []))
        msgs[-1] = {**user, "content": parts + [{"type": "text", "text": user["content"]}]}
    return {"text": chat.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), **inputs}


def as_images(processor) -> bool:
    """Whether a clip goes to this model as a list of frame images: it has an image processor and no
    video processor of its own."""
    return getattr(processor, "video_processor", None) is None and getattr(processor, "image_processor", None) is not None


def make_prompts(rows: list[dict], tok, model_path: str, model_flag: str, template=None, processor=None,
                 answer_format: str = "boxed") -> list[dict]:
    """make_prompt for every row, in the model's format; image / audio / video rows need a model that takes them."""
    for field, what, parts, tower in (("images", "images", ("image_processor",), "vision tower"),
                                      ("audios", "audio", ("feature_extractor",), "audio encoder"),
                                      ("video", "video", ("video_processor", "image_processor"), "vision tower")):
        if any(r.get(field) for r in rows) and all(getattr(processor, p, None) is None for p in parts):
            raise SystemExit(f"--data has {what} but --model {model_flag} has no {tower}")
    embedded = embedded_format(model_path)
    return [make_prompt(r["question"], tok, embedded, template, r.get("images"), processor, r.get("audios"), answer_format,
                        r.get("video")) for r in rows]


def report_lost_characters(rows: list[dict], tok, model_path: str, model_flag: str, say=print) -> int:
    """The embedded models' tokenizers hold their own task's characters only (data/build.py), and drop
    any other without a word: tiny-math reads "What is 1,000 + 2?" as "  1000 + 2". One line counts the
    questions that lose characters and shows the first; returns the count. Real tokenizers (byte-level)
    lose none and are not checked."""
    if not embedded_format(model_path):
        return 0
    read = [tok.decode(tok(r["question"])["input_ids"]) for r in rows]
    changed = [i for i, (r, seen) in enumerate(zip(rows, read)) if seen != r["question"]]
    if changed:
        first = changed[0]
        lost = "".join(sorted(set(rows[first]["question"]) - set(read[first])))
        say(f"--model {model_flag}: {len(changed)} of {len(rows)} questions lose characters its tokenizer does not have "
            f"(an embedded model reads its own task's characters only), e.g. question {first + 1}: "
            f"{rows[first]['question']!r} is read as {read[first]!r} (lost: {lost!r})")
    return len(changed)


if __name__ == "__main__":
    from config import add_data_flags
    from data.files import rows_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_flags(ap.add_argument)  # train.py's and eval.py's own
    ap.add_argument("--model", default=None, help="show prompts as this model's tokenizer renders them")
    args = ap.parse_args()
    rows = rows_for(args, args.model or args.data)
    tok = None
    if args.model:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.model)
    embedded = args.data if args.model is None and args.data in TASKS else None
    print(f"{len(rows)} rows")
    for r in rows[:3]:
        p = make_prompt(r["question"], tok, embedded, load_template(args.prompt_template), r.get("images"), None,
                        r.get("audios"), answer_format(args.data, args.answer_format), r.get("video"))
        print({k: v for k, v in r.items() if k not in ("images", "audios", "video")}, "->", repr(p["text"]),
              f"+ {len(p.get('images', []))} image(s), {len(r.get('audios', []))} audio clip(s), {len(p.get('videos', []))} video(s)")
