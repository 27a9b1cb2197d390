"""The embedded video task and its tiny video-language model: OP-TTRAV's video half on a CPU.

    python -m data.tinyclips                              # build (or reuse) the cached model, print its folder
    python projects/check_shift.py tiny-clips             # its accuracy on clean and shifted clips
    python train.py --preset tiny-clips                   # adapt it on the unlabeled, shifted clips

Task: "which way?" about a short synthetic clip, generated here with numpy: 8 frames of 16 x 16 RGB,
a coloured square on a dark, noisy background moving left, right, up or down at a steady speed.
The data pipeline samples --video-frames 4 of the 8 uniformly (data/media.py: frames 1, 3, 5, 7),
as it does for any video. The answer is free text in one of five wordings, drawn at random in
pre-training:
    "left", "moving left", "it moves left", "the square moves left", "it goes left"
so an exact-match vote splits correct answers, which OP-TTRAV's semantic rewards address. A quarter
of the pre-training labels name a random direction (BUILD["label_noise"]), so one sample is right
less often than the vote over many: the gap test-time RL feeds on. The checker (`grade`) reads
which direction word an answer names; evaluation and monitoring only.
Test-time shift (SHIFT): slower motion, smaller squares and stronger noise than pre-training.

Model: a real transformers architecture, LLaVA (LlavaForConditionalGeneration) shown the frames as
a list of images, the way a model without a video input of its own takes a clip: a 2-layer CLIP
vision tower on 4 x 4 patches (16 tokens per frame), a 2-layer MLP projector and a 2-layer Qwen2
language model with a character tokenizer, saved with its LlavaProcessor (PIL image backend).

    prompt:   "<image><image><image><image>Q: which way?\\nA:"   (each <image> -> 16 frame tokens)
    answer:   " it moves left"

Scope: the clip generator, the shift, the checker, the processor / model config, pre-training, the cache.
"""
import random
from pathlib import Path

import numpy as np
import torch

from data.build import cached, llava_model, llava_processor, pad_answers, pretrain, save_built, word_named

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy) in image coordinates
WORDINGS = ["{w}", "moving {w}", "it moves {w}", "the square moves {w}", "it goes {w}"]
QUESTION = "which way?"
MARKER = "tinyclips_build.json"  # written into the model folder: says which prompt format the model speaks (data/tasks.py)
ANSWER_FORMAT = "text"  # --answer-format for this task
# Everything that defines the built model; the cache key hashes it. Bump `version` when the builder changes.
BUILD = dict(
    version=1, seed=2468, n_test=200, clip_frames=8, frames=4, size=16, patch=4,
    vision_hidden=64, vision_layers=2, vision_heads=2, hidden=96, layers=2, heads=3, kv_heads=1, intermediate=256,
    steps=800, batch=64, lr=1e-3, warmup=50, weight_decay=0.01, pool=4000, label_noise=0.25, plain_steps=300,
)
# Pre-training clips: speed in pixels per frame, square side in pixels, background noise std.
VIDEO_FRAMES = BUILD["frames"]  # --video-frames for this task: what the model was pre-trained on
CLEAN = dict(speed=(1.0, 1.5), side=(3, 4), noise=(0.0, 0.05))
# The test-time shift: slower, smaller, noisier.
SHIFT = dict(speed=(0.7, 1.0), side=(2, 3), noise=(0.05, 0.1))
CHARS = list("abcdefghijklmnopqrstuvwxyz:QA? \n")
SPECIALS = ["<pad>", "<eos>", "<image>"]


# ----------------------------------------------------------------------------- clips, shift, checker
def make_clip(direction: str, rng: np.random.Generator, cond: dict = CLEAN, frames: int = 8, size: int = 16) -> np.ndarray:
    """One clip, (frames, size, size, 3) uint8: a square of a random colour moving `direction` at a
    random speed, starting where its whole path stays inside the frame, over background noise."""
    dx, dy = DIRECTIONS[direction]
    side = int(rng.integers(cond["side"][0], cond["side"][1] + 1))
    speed = rng.uniform(*cond["speed"])
    travel = speed * (frames - 1)
    room = size - side  # the square's top-left corner stays in [0, room]

    def start(d: int) -> float:  # along the motion: leave `travel` pixels of room ahead; across: anywhere
        return rng.uniform(travel, room) if d < 0 else rng.uniform(0, room - travel) if d > 0 else rng.uniform(0, room)
    x0, y0 = start(dx), start(dy)
    colour = rng.uniform(0.5, 1.0, 3)
    clip = rng.normal(0.0, rng.uniform(*cond["noise"]), (frames, size, size, 3))
    for t in range(frames):
        x, y = round(x0 + dx * speed * t), round(y0 + dy * speed * t)
        clip[t, y:y + side, x:x + side] += colour
    return (np.clip(clip, 0, 1) * 255).round().astype(np.uint8)


def grade(pred: str | None, truth: str) -> bool:
    """Correct if the answer names exactly one direction and it is the true one ("it goes up" = "up";
    no plurals: "lefts" names none)."""
    return word_named(pred, DIRECTIONS) == truth


def test_split(shifted: bool = True, b: dict = BUILD, s: dict = SHIFT) -> list[dict]:
    """The unlabeled test clips as rows {"question", "answer", "video": (8, 16, 16, 3) uint8}: balanced
    over the directions, seeded; a different seed from pre-training, so no clip is shared. The data
    pipeline samples the frames (data/files.py)."""
    rng = np.random.default_rng(b["seed"] + 1)
    names = [list(DIRECTIONS)[i % len(DIRECTIONS)] for i in range(b["n_test"])]
    return [{"question": QUESTION, "answer": w, "video": make_clip(w, rng, s if shifted else CLEAN, b["clip_frames"], b["size"])}
            for w in names]


def prompt_text(question: str = QUESTION, frames: int = BUILD["frames"]) -> str:
    return "<image>" * frames + f"Q: {question}\nA:"


# ----------------------------------------------------------------------------- tokenizer, processor, model
def make_processor(b: dict = BUILD):
    """LlavaProcessor = character tokenizer + CLIP image processor, one image per frame: (16 / 4)^2 = 16
    tokens per frame."""
    return llava_processor(SPECIALS, CHARS, b)


def make_model(tok, b: dict = BUILD):
    return llava_model(tok, b, max_positions=160)  # 4 frames x 16 tokens + question + answer


def build(out: Path, b: dict = BUILD) -> Path:
    """Pre-train on clean clips (a fixed pool, frames sampled and processed once): first the bare
    direction word, then a random wording of a (sometimes wrong) direction."""
    from PIL import Image

    from data.media import uniform_indices

    torch.manual_seed(b["seed"])
    rng = random.Random(b["seed"])
    nrng = np.random.default_rng(b["seed"])
    processor = make_processor(b)
    tok = processor.tokenizer
    model = make_model(tok, b)
    names = [rng.choice(list(DIRECTIONS)) for _ in range(b["pool"])]
    keep = uniform_indices(b["clip_frames"], b["frames"])  # the frames the data pipeline will show the model
    frames = [Image.fromarray(f) for w in names for f in make_clip(w, nrng, CLEAN, b["clip_frames"], b["size"])[keep]]
    pixels = processor.image_processor(frames, return_tensors="pt")["pixel_values"]  # (pool * K, 3, H, W)
    pixels = pixels.view(b["pool"], b["frames"], *pixels.shape[1:])  # (pool, K, 3, H, W)
    prompt = processor(text=prompt_text(frames=b["frames"]), images=frames[:b["frames"]], return_tensors="pt")["input_ids"][0].tolist()

    step = 0

    def next_batch() -> dict:
        # The first plain_steps teach the bare direction word with true labels; then the wordings and a
        # careless labeller. With those from the first step the model learned to ignore the frames
        # (chance accuracy on clean clips, at lr 1e-3 and 3e-3 alike).
        nonlocal step
        plain, step = step < b["plain_steps"], step + 1
        idx = rng.sample(range(b["pool"]), b["batch"])
        named = [rng.choice(list(DIRECTIONS)) if not plain and rng.random() < b["label_noise"] else names[i] for i in idx]
        answers = [tok(" " + (w if plain else rng.choice(WORDINGS).format(w=w)))["input_ids"] + [tok.eos_token_id]
                   for w in named]
        return {**pad_answers(prompt, answers, tok.pad_token_id),
                "pixel_values": pixels[idx].flatten(0, 1)}  # (B * K, 3, H, W): frames in prompt order

    pretrain(model, next_batch, b, "building tiny-clips model")
    return save_built(out, model, processor, MARKER, b)


def get_model(b: dict = BUILD) -> Path:
    return cached("tiny-clips", b, build)


if __name__ == "__main__":  # accuracy on clean and shifted inputs: python projects/check_shift.py
    print(get_model())
