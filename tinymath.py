"""The embedded default: a synthetic math task and the tiny model that (imperfectly) solves it.

    python tinymath.py                 # build (or reuse) the cached model and print its path
    python tinymath.py --show 5        # print a few test questions and one sample solution each

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

Scope: the task (questions, answers, slips), the tokenizer, the model config, pre-training, cache.
"""
import argparse
import hashlib
import json
import os
import random
from pathlib import Path

import torch
from tqdm import tqdm

# Pre-training text: each column slips independently. Keys are read by `solve`.
SLIPS = {"drop_carry": 0.25, "off_by_one": 0.06, "fact_8_7": 0.45}
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


# ----------------------------------------------------------------------------- tokenizer + model
def make_tokenizer(specials: list[str] = SPECIALS, chars: list[str] = CHARS, extra_special_tokens: dict | None = None):
    """A Qwen2 (byte-level BPE) tokenizer whose vocabulary is our characters and no merges: one
    token per character. Byte-level spells space and newline as "Ġ" and "Ċ". Using the Qwen2 class
    itself (not a bare tokenizers object) matters: AutoTokenizer, and so vLLM, rebuilds a qwen2
    model's tokenizer as Qwen2Tokenizer, and a vocabulary in any other spelling would lose them.
    The image / audio models (tinydigits.py, tinyaudio.py) pass their own characters and their
    placeholder tokens as extra_special_tokens (e.g. {"image_token": "<image>"})."""
    from transformers import Qwen2Tokenizer

    byte_level = {" ": "\u0120", "\n": "\u010a"}
    vocab = {tok: i for i, tok in enumerate(specials + [byte_level.get(c, c) for c in chars])}
    return Qwen2Tokenizer(vocab=vocab, merges=[], pad_token="<pad>", eos_token="<eos>", unk_token=None,
                          bos_token=None, padding_side="left",
                          **({"extra_special_tokens": extra_special_tokens} if extra_special_tokens else {}))


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
    tokenizer = make_tokenizer()
    model = make_model(tokenizer, b)
    exclude = {r["question"] for r in test_split()}
    pretrain(model, lambda: pretrain_batch(rng, tokenizer, b["batch"], exclude, b), b, "building tiny-math model")
    return save_built(out, model, tokenizer, "tinymath_build.json", b)


# ----------------------------------------------------------------------------- shared by the embedded builders
def pretrain(model, next_batch, b: dict, desc: str) -> None:
    """AdamW, linear warm-up then sqrt decay to 0, gradient clipping; next_batch() -> the model's kwargs."""
    opt = torch.optim.AdamW(model.parameters(), lr=b["lr"], weight_decay=b["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / b["warmup"]) * max(0.0, 1 - s / b["steps"]) ** 0.5)
    model.train()
    bar = tqdm(range(b["steps"]), desc=desc, unit="step")
    for step in bar:
        loss = model(**next_batch()).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def save_built(out: Path, model, saver, marker: str, b: dict) -> Path:
    """Model + tokenizer/processor + a marker holding the build settings, written beside and renamed
    (checkpoint.write_model): no half-built cache. The marker tells which prompt format the model speaks."""
    from checkpoint import write_model

    write_model(out, model, saver, texts={marker: json.dumps(b, indent=1)})
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("NANOTTRL_CACHE", Path.home() / ".cache" / "nanottrl"))


def cached(name: str, b: dict, build_fn) -> Path:
    """Path of a built model, building it on first use. The folder name hashes the settings."""
    key = hashlib.sha1(json.dumps(b, sort_keys=True).encode()).hexdigest()[:10]
    out = cache_dir() / f"{name}-{key}"
    if not (out / "config.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"{name} model not cached: building it once into {out}")
        build_fn(out, b)
    return out


def get_model(b: dict = BUILD) -> Path:
    return cached("tiny-math", b, build)


def check_shift(path: Path, test_split, prompt_text, k: int, max_tokens: int, noun: str, **eval_kwargs) -> None:
    """The image / audio builders' self-check: avg@k, maj@k, ... at T = 1 on clean and shifted test inputs."""
    from eval import evaluate, format_summary
    from sample import HFEngine, load_policy, load_processor

    print(path)
    model, tok = load_policy(str(path))
    engine = HFEngine(model, tok, processor=load_processor(model))
    for shifted in (False, True):
        rows = test_split(shifted)
        prompts = [{"text": prompt_text(), **{m: r[m] for m in ("images", "audios") if m in r}} for r in rows]
        summary, _ = evaluate(engine, prompts, [r["answer"] for r in rows], k=k, temperature=1.0, top_p=1.0,
                              max_tokens=max_tokens, **eval_kwargs)
        print(f"{'shifted' if shifted else 'clean'} test {noun} (T=1): {format_summary(summary)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", type=int, default=0, help="print this many test questions with a slipped solution")
    args = ap.parse_args()
    print(get_model())
    rng = random.Random(0)
    for row in test_split()[: args.show]:
        print(prompt_text(row["question"]) + solve(row["question"], rng), "| truth:", row["answer"])
