"""What the embedded models' builders share: a character tokenizer, one pre-training loop,
and a cache so each model is built once; the free-text tasks' answer checker (word_named); and the
random-weight Qwen2 models of the benchmarks and the GPU check (random_qwen2).

    python -m data.tinymath          # build (or reuse) one embedded model and print its folder

The embedded models (data/tinymath.py, data/tinydigits.py, data/tinyaudio.py, data/tinyclips.py) are real transformers
architectures saved with `save_pretrained`, so transformers and vLLM load them like hub models. Each
is built from a settings dict (its BUILD); the cache folder's name hashes those settings, so a
changed builder gets a fresh folder ($NANOTTRL_CACHE, default ~/.cache/nanottrl).
"""
import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm import tqdm

from checkpoint import write_model


def make_tokenizer(specials: list[str], chars: list[str], extra_special_tokens: dict | None = None):
    """A Qwen2 (byte-level BPE) tokenizer whose vocabulary is `specials` + `chars` and no merges: one
    token per character. Byte-level spells space and newline as "Ġ" and "Ċ". Using the Qwen2 class
    itself (not a bare tokenizers object) matters: AutoTokenizer, and so vLLM, rebuilds a qwen2
    model's tokenizer as Qwen2Tokenizer, and a vocabulary in any other spelling would lose them.
    The image / audio models pass their placeholder tokens as extra_special_tokens (e.g.
    {"image_token": "<image>"})."""
    from transformers import Qwen2Tokenizer

    byte_level = {" ": "\u0120", "\n": "\u010a"}
    vocab = {tok: i for i, tok in enumerate(specials + [byte_level.get(c, c) for c in chars])}
    return Qwen2Tokenizer(vocab=vocab, merges=[], pad_token="<pad>", eos_token="<eos>", unk_token=None,
                          bos_token=None, padding_side="left",
                          **({"extra_special_tokens": extra_special_tokens} if extra_special_tokens else {}))


def llava_processor(specials: list[str], chars: list[str], b: dict):
    """LlavaProcessor = character tokenizer + CLIP image processor (PIL backend: no torchvision) for
    b["size"]-pixel square images in b["patch"]-pixel patches. "default" feature selection drops CLIP's
    CLS token: (size / patch)^2 tokens per image. The image models share it (tiny-digits, tiny-clips)."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = make_tokenizer(specials, chars, {"image_token": "<image>"})
    size = b["size"]
    images = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                   image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=b["patch"],
                          vision_feature_select_strategy="default", num_additional_image_tokens=1, image_token="<image>")


def llava_model(tok, b: dict, max_positions: int):
    """A LLaVA: a CLIP vision tower, a 2-layer MLP projector and a Qwen2 language model, sized by b."""
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, Qwen2Config

    vision = CLIPVisionConfig(hidden_size=b["vision_hidden"], intermediate_size=2 * b["vision_hidden"],
                              num_hidden_layers=b["vision_layers"], num_attention_heads=b["vision_heads"],
                              image_size=b["size"], patch_size=b["patch"], projection_dim=b["vision_hidden"])
    text = Qwen2Config(vocab_size=len(tok), hidden_size=b["hidden"], num_hidden_layers=b["layers"],
                       num_attention_heads=b["heads"], num_key_value_heads=b["kv_heads"],
                       intermediate_size=b["intermediate"], max_position_embeddings=max_positions, tie_word_embeddings=True,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu",
                      tie_word_embeddings=True)
    return LlavaForConditionalGeneration(cfg)


def random_qwen2(shape: dict, device: str = "cpu", seed: int = 0, save: Path | None = None, tokenizer=None):
    """A Qwen2ForCausalLM with random weights from Qwen2Config(**shape) (nothing downloaded), float32,
    created on `device`, initialised after torch.manual_seed(seed): the same seed and shape give the
    same weights, so measurements on it stay comparable. With `save`, it is also written there with
    `tokenizer` in HF format (transformers and vLLM load it). The benchmarks (projects/bench_sizes.py,
    projects/bench_memory.py) and the GPU check (projects/gpu_check.py) build their models here."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):  # the weights are made where they will run: no float32 copy on the CPU first
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    if save is not None:
        model.save_pretrained(save)
        tokenizer.save_pretrained(save)
    return model


def word_named(answer: str | None, words, plurals: bool = False) -> str | None:
    """The one of `words` that a free-text answer names, else None (none named, or several): the
    answer is lower-cased and split at whitespace, "?" and "." ("Clicks." -> "clicks"); with
    `plurals`, a word + "s" counts as the word. The tiny-sounds and tiny-clips checkers (`grade`)."""
    said = set((answer or "").lower().replace("?", " ").replace(".", " ").split())
    named = [w for w in words if w in said or (plurals and w + "s" in said)]
    return named[0] if len(named) == 1 else None


def pad_answers(prompt: list[int], answers: list[list[int]], pad_id: int) -> dict:
    """One shared prompt + answers of different lengths -> input_ids, labels (the answer tokens; -100
    elsewhere) and attention_mask (the prompt and the answer, not the right padding), each (B, L)."""
    width = len(prompt) + max(map(len, answers))
    ids = torch.tensor([prompt + a + [pad_id] * (width - len(prompt) - len(a)) for a in answers])  # (B, L)
    targets = torch.tensor([[-100] * len(prompt) + a + [-100] * (width - len(prompt) - len(a)) for a in answers])
    mask = (targets != -100).long()
    mask[:, :len(prompt)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": targets}


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


def save_built(out: Path, model, tokenizer_or_processor, marker: str, b: dict) -> Path:
    """Model + tokenizer/processor + a marker holding the build settings, written beside and renamed
    (checkpoint.write_model): no half-built cache. The marker tells which prompt format the model speaks."""
    write_model(out, model, tokenizer_or_processor, texts={marker: json.dumps(b, indent=1)})
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
