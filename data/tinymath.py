"""The embedded default: a synthetic math task and the tiny model that (imperfectly) solves it.

    python -m data.tinymath            # build (or reuse) the cached model and print its path
    python -m data.tinymath --show 5   # print a few test questions and one sample solution each

Why this exists: nanoTTRL must run test-time RL end to end on a CPU with no model hub. So the repo
builds its own "base model": a 0.3M-parameter Qwen2 (a real transformers architecture) with a
character-level tokenizer, pre-trained here on column addition written out step by step and ending
in \\boxed{...}. It is saved with `save_pretrained`, so transformers and vLLM load it like any hub model.

The model must be imperfect the way real models are, so the pre-training text contains *slips*, the
way a careless student writes them (all rates are in SLIPS below, all seeds in BUILD):
  - a dropped carry:      "4+9=13" where "4+9+1=14" was due       (each carry, p = 0.25)
  - a misremembered fact: a column sum off by one                  (each column, p = 0.06)
  - one shaky fact:       8+7 is written as 14 almost half the time (p = 0.45)
The final \\boxed{} answer always follows from the working, so slips change the answer. A model fit
to this text samples slips at about those rates: at temperature 1 its samples disagree, the
majority answer is right far more often than one sample (maj@16 >> avg@16), and on questions with
several carries or an 8+7 column even the vote of 16 is sometimes wrong: there is headroom, and the
pseudo-label is not always right (TTRL's label accuracy is below 1, as on real benchmarks).

    question:  "347+295"
    prompt:    "Q: 347+295\\nA:"
    solution:  " 7+5=12 4+9+1=14 3+2+1=6 \\boxed{642}"   (columns right to left, carry written as +1)

Scope: the task (questions, answers, slips), the model config and its pre-training data; the
tokenizer builder, pre-training loop and cache are shared with the other embedded models (data/build.py).
"""
import argparse
import random
from pathlib import Path

import torch

from data.build import cached, make_tokenizer, pretrain, save_built

# Pre-training text: each column slips independently. Keys are read by `solve`.
SLIPS = {"drop_carry": 0.25, "off_by_one": 0.06, "fact_8_7": 0.45}
MARKER = "tinymath_build.json"  # written into the model folder: says which prompt format the model speaks (data/tasks.py)
ANSWER_FORMAT = "boxed"  # --answer-format for this task
# Everything that defines the built model; the cache key hashes it. Bump `version` when the builder code changes.
# head size 96/3 = 32: vLLM's CPU attention supports only some head sizes (32, 64, 80, 96, 128, ...).
BUILD = dict(
    version=3, seed=1234, digits=(2, 3, 4), n_test=128, test_seed=2024,
    hidden=96, layers=3, heads=3, kv_heads=1, intermediate=256, max_positions=128,
    steps=600, batch=64, lr=3e-3, warmup=100, weight_decay=0.01, slips=SLIPS,
)
CHARS = list("0123456789+=:QA\\{}boxed \n")
SPECIALS = ["<pad>", "<eos>"]


# ----------------------------------------------------------------------------- the task
def make_question(rng: random.Random, digits: int) -> str:
    lo, hi = 10 ** (digits - 1), 10 ** digits - 1
    return f"{rng.randint(lo, hi)}+{rng.randint(lo, hi)}"


def true_answer(question: str) -> str:
    a, b = question.split("+")
    return str(int(a) + int(b))


def solve(question: str, rng: random.Random | None = None, slips: dict = SLIPS) -> str:
    """Column addition, right to left. With `rng`, slips happen at the rates in `slips`."""
    a, b = question.split("+")
    width = max(len(a), len(b))
    a, b = a.zfill(width), b.zfill(width)
    steps, digits, carry = [], [], 0
    for da, db in zip(map(int, reversed(a)), map(int, reversed(b))):
        used_carry = carry
        if rng and carry and rng.random() < slips["drop_carry"]:
            used_carry = 0  # forgot the carry
        s = da + db + used_carry
        if rng and {da, db} == {8, 7} and rng.random() < slips["fact_8_7"]:
            s -= 1  # the shaky fact: 8+7=14
        elif rng and rng.random() < slips["off_by_one"]:
            s = max(0, s + rng.choice((-1, 1)))
        steps.append(f"{da}+{db}{'+1' if used_carry else ''}={s}")
        digits.append(s % 10)
        carry = s // 10
    total = "".join(map(str, reversed(digits)))
    if carry:
        total = "1" + total
    return " " + " ".join(steps) + " \\boxed{" + str(int(total)) + "}"


def prompt_text(question: str) -> str:
    return f"Q: {question}\nA:"


def test_split(n: int = BUILD["n_test"], seed: int = BUILD["test_seed"]) -> list[dict]:
    """The held-out, unlabeled-at-train-time questions (answers are for evaluation only)."""
    rng = random.Random(seed)
    qs, seen = [], set()
    while len(qs) < n:
        q = make_question(rng, rng.choice(BUILD["digits"]))
        if q not in seen:
            seen.add(q)
            qs.append({"question": q, "answer": true_answer(q)})
    return qs


# ----------------------------------------------------------------------------- the model
def make_model(tokenizer, b: dict = BUILD):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=b["hidden"], num_hidden_layers=b["layers"],
        num_attention_heads=b["heads"], num_key_value_heads=b["kv_heads"],
        intermediate_size=b["intermediate"], max_position_embeddings=b["max_positions"],
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(cfg)


def pretrain_batch(rng: random.Random, tokenizer, batch: int, exclude: set, b: dict) -> dict:
    """One batch of (prompt, slipped solution) pairs; loss only on the solution tokens."""
    ids, labels = [], []
    for _ in range(batch):
        q = make_question(rng, rng.choice(b["digits"]))
        while q in exclude:  # never pre-train on a test question
            q = make_question(rng, rng.choice(b["digits"]))
        p = tokenizer(prompt_text(q))["input_ids"]
        s = tokenizer(solve(q, rng, b["slips"]))["input_ids"] + [tokenizer.eos_token_id]
        ids.append(p + s)
        labels.append([-100] * len(p) + s)
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        "labels": torch.tensor([y + [-100] * (width - len(y)) for y in labels]),
        "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
    }


def build(out: Path, b: dict = BUILD) -> Path:
    """Pre-train the tiny model from scratch (deterministic for a given seed and torch build)."""
    torch.manual_seed(b["seed"])
    rng = random.Random(b["seed"])
    tokenizer = make_tokenizer(SPECIALS, CHARS)
    model = make_model(tokenizer, b)
    exclude = {r["question"] for r in test_split()}
    pretrain(model, lambda: pretrain_batch(rng, tokenizer, b["batch"], exclude, b), b, "building tiny-math model")
    return save_built(out, model, tokenizer, MARKER, b)


def get_model(b: dict = BUILD) -> Path:
    return cached("tiny-math", b, build)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", type=int, default=0, help="print this many test questions with a slipped solution")
    args = ap.parse_args()
    print(get_model())
    rng = random.Random(0)
    for row in test_split()[: args.show]:
        print(prompt_text(row["question"]) + solve(row["question"], rng), "| truth:", row["answer"])
