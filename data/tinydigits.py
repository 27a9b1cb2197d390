"""The embedded image task and its tiny vision-language model: TTRV on a CPU.

    python -m data.tinydigits                       # build (or reuse) the cached model, print its folder
    python projects/check_shift.py tiny-digits      # its accuracy on clean and shifted test images
    python train.py --preset tiny-digits            # TTRV: adapt it on the unlabeled, shifted test images

Task: scikit-learn's 8x8 handwritten digits (1797 images, shipped inside the package, no download),
upscaled to 16x16 RGB. The question is "which digit?", the answer a class name ("\\boxed{7}"), the
way TTRV poses recognition. A seeded split keeps TEST images away from pre-training.
Test-time shift: the test images are corrupted (rotation, blur, noise; SHIFT below, seeded per
image), which the model never saw: accuracy drops and its samples disagree, which is what
test-time RL feeds on. The corruption functions are plain numpy/scipy and tested.

Model: a real transformers architecture, LLaVA (LlavaForConditionalGeneration): a 2-layer CLIP
vision tower on 2x2 patches (64 image tokens), a 2-layer MLP projector, and a 2-layer Qwen2 language
model (head size 32, as data/tinymath.py) with a character tokenizer. Its LlavaProcessor (CLIP image
processor, PIL backend: no torchvision needed) is saved beside it, so AutoProcessor and
AutoModelForImageTextToText load it like any hub VLM.

    prompt:   "<image>Q: digit?\\nA:"   (the processor expands <image> into 64 image tokens)
    answer:   " \\boxed{7}"

Scope: the data, the shift, the tokenizer, processor and model config, pre-training, the cache.
"""
import random
from pathlib import Path

import numpy as np
import torch

from data.build import cached, llava_model, llava_processor, pretrain, save_built

MARKER = "tinydigits_build.json"  # written into the model folder: says which prompt format the model speaks (data/tasks.py)
ANSWER_FORMAT = "boxed"  # --answer-format for this task
# Everything that defines the built model; the cache key hashes it. Bump `version` when the builder changes.
BUILD = dict(
    version=1, seed=1234, n_test=300, size=16, patch=2,
    vision_hidden=64, vision_layers=2, vision_heads=2, hidden=96, layers=2, heads=3, kv_heads=1, intermediate=256,
    steps=800, batch=64, lr=3e-3, warmup=50, weight_decay=0.01,
)
# The test-time shift: each test image is rotated, blurred and noised (degrees, pixels, intensity in [0, 1]).
SHIFT = dict(rotate=20.0, blur=0.5, noise=0.2, seed=2024)
CHARS = list("0123456789:QA\\{}boxed igt?\n")
SPECIALS = ["<pad>", "<eos>", "<image>"]
QUESTION = "digit?"


# ----------------------------------------------------------------------------- data and shift
def digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 16, 16) float images in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.kron(d.images / 16.0, np.ones((2, 2)))  # 8x8 -> 16x16, each pixel a 2x2 block
    return imgs.astype(np.float32), d.target


def split(b: dict = BUILD) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (pre-training, test) images: a seeded permutation, the last n_test are the test set."""
    perm = np.random.default_rng(b["seed"]).permutation(len(digits()[1]))
    return perm[:-b["n_test"]], perm[-b["n_test"]:]


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    from scipy.ndimage import rotate as nd_rotate
    return nd_rotate(img, degrees, reshape=False, order=1, mode="constant", cval=0.0)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(img, sigma, mode="constant")


def add_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0.0, std, img.shape), 0.0, 1.0)


def corrupt(img: np.ndarray, rng: np.random.Generator, s: dict = SHIFT) -> np.ndarray:
    """The shift: rotate by +-[s/2, s] degrees, blur, add noise; clipped to [0, 1]."""
    angle = rng.uniform(s["rotate"] / 2, s["rotate"]) * rng.choice([-1, 1])
    return add_noise(np.clip(blur(rotate(img, angle), s["blur"]), 0, 1), s["noise"], rng).astype(np.float32)


def to_image(img: np.ndarray):
    """(H, W) floats in [0, 1] -> an RGB PIL image (the processor's input)."""
    from PIL import Image
    return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).convert("RGB")


def test_split(shifted: bool = True, b: dict = BUILD, s: dict = SHIFT) -> list[dict]:
    """The unlabeled test images as rows {"question", "answer", "images": [PIL image]}."""
    imgs, labels = digits()
    rng = np.random.default_rng(s["seed"])
    rows = []
    for i in split(b)[1]:
        img = corrupt(imgs[i], rng, s) if shifted else imgs[i]
        rows.append({"question": QUESTION, "answer": str(labels[i]), "images": [to_image(img)]})
    return rows


def prompt_text(question: str = QUESTION) -> str:
    return f"<image>Q: {question}\nA:"


# ----------------------------------------------------------------------------- tokenizer, processor, model
def make_processor(b: dict = BUILD):
    """LlavaProcessor = character tokenizer (Qwen2 class, as data/tinymath.py) + CLIP image processor:
    (16 / 2)^2 = 64 image tokens per image."""
    return llava_processor(SPECIALS, CHARS, b)


def make_model(tok, b: dict = BUILD):
    return llava_model(tok, b, max_positions=128)


def build(out: Path, b: dict = BUILD) -> Path:
    """Pre-train on clean images (never the test images), teacher-forcing ' \\boxed{d}<eos>'."""
    torch.manual_seed(b["seed"])
    rng = random.Random(b["seed"])
    processor = make_processor(b)
    tok = processor.tokenizer
    model = make_model(tok, b)
    imgs, labels = digits()
    train_idx = list(split(b)[0])
    prompt = processor(text=prompt_text(), images=to_image(imgs[0]), return_tensors="pt")["input_ids"][0].tolist()

    def next_batch() -> dict:
        idx = rng.sample(train_idx, b["batch"])
        pixels = processor.image_processor([to_image(imgs[i]) for i in idx], return_tensors="pt")["pixel_values"]
        answers = [tok(f" \\boxed{{{labels[i]}}}")["input_ids"] + [tok.eos_token_id] for i in idx]
        ids = torch.tensor([prompt + a for a in answers])  # (B, P + A): every answer has the same length
        targets = torch.tensor([[-100] * len(prompt) + a for a in answers])
        return {"input_ids": ids, "pixel_values": pixels, "labels": targets}

    pretrain(model, next_batch, b, "building tiny-digits model")
    return save_built(out, model, processor, MARKER, b)


def get_model(b: dict = BUILD) -> Path:
    return cached("tiny-digits", b, build)


if __name__ == "__main__":  # accuracy on clean and shifted inputs: python projects/check_shift.py
    print(get_model())
