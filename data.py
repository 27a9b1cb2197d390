"""Questions and prompts: load a test set, and turn each question into the prompt a model expects.

    python data.py --data tiny-math                  # print the first rows and prompts
    python data.py --data my.jsonl --question-key problem --answer-key solution

`--data` is `tiny-math` (the embedded synthetic task, see tinymath.py) or a .jsonl / .json file of
rows. Each row becomes {"question": str, "answer": str}. The answer is ground truth: only evaluation
and monitoring read it; the TTRL reward never does.

Prompts: the tiny model has its own plain format ("Q: ...\\nA:"); a model with a chat template gets
it, with the Qwen2.5-Math instruction to reason step by step and box the answer; anything else gets
the same instruction as plain text.
"""
import argparse
import json
from pathlib import Path

import tinymath

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def load_rows(data: str, question_key: str = "question", answer_key: str = "answer") -> list[dict]:
    """Rows as [{"question", "answer"}]. Errors name the flag, the file and the line."""
    if data == "tiny-math":
        return tinymath.test_split()
    path = Path(data)
    if path.suffix not in (".jsonl", ".json"):
        raise SystemExit(f"--data {data}: expected 'tiny-math' or a .jsonl/.json file")
    if not path.is_file():
        raise SystemExit(f"--data {data}: file not found")
    text = path.read_text()
    if path.suffix == ".json":
        raw = json.loads(text)
        raw = raw if isinstance(raw, list) else raw.get("data", raw)
    else:
        raw = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SystemExit(f"--data {data}: line {i} is not valid JSON ({e.msg})")
    rows = []
    for i, r in enumerate(raw, 1):
        for key, flag in ((question_key, "--question-key"), (answer_key, "--answer-key")):
            if key not in r:
                raise SystemExit(f"--data {data}: row {i} has no {flag} {key!r} (keys: {sorted(r)})")
        rows.append({"question": str(r[question_key]), "answer": str(r[answer_key])})
    if not rows:
        raise SystemExit(f"--data {data}: no rows")
    return rows


def is_tiny_math(model_dir: str) -> bool:
    return (Path(model_dir) / "tinymath_build.json").exists()


def make_prompt(question: str, tokenizer, tiny: bool) -> dict:
    """A prompt dict for sample.py (images / audio would join as extra keys)."""
    if tiny:
        return {"text": tinymath.prompt_text(question)}
    if tokenizer is not None and tokenizer.chat_template:
        msgs = [{"role": "system", "content": MATH_INSTRUCTION}, {"role": "user", "content": question}]
        return {"text": tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)}
    return {"text": f"Question: {question}\n{MATH_INSTRUCTION}\nAnswer:"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tiny-math", help="'tiny-math' or a .jsonl/.json file")
    ap.add_argument("--question-key", default="question", help="field holding the question")
    ap.add_argument("--answer-key", default="answer", help="field holding the reference answer")
    args = ap.parse_args()
    rows = load_rows(args.data, args.question_key, args.answer_key)
    print(f"{len(rows)} rows")
    for r in rows[:3]:
        print(json.dumps(r), "->", repr(make_prompt(r["question"], None, tiny=args.data == "tiny-math")["text"]))
