"""The embedded audio task and its tiny audio-language model: OP-TTRAV's open-ended answers on a CPU.

    python -m data.tinyaudio                              # build (or reuse) the cached model, print its folder
    python projects/check_shift.py tiny-sounds            # its accuracy on clean and shifted clips
    python train.py --preset tiny-sounds --reward cluster # adapt it on the unlabeled, shifted clips

Task: "what sound?" about a one-second synthetic clip of one of four sound types, generated here
with numpy (no text-to-speech, no download):
    tone    a steady sine                         chirp   a sine sweeping up 2.5x in pitch
    hiss    white noise                           click   a train of short clicks (4-10 per second)
The answer is free text in one of five wordings, drawn at random in pre-training:
    "tone", "a tone", "a tone sound", "i hear a tone", "it sounds like a tone"
so correct answers are worded differently and an exact-match vote splits them, which is the
problem OP-TTRAV's semantic rewards address. Pre-training labels are noisy (a quarter name a random
sound, BUILD["label_noise"]), so one sample is right less often than the vote over many: the gap
test-time RL feeds on (data/tinymath.py's slips play the same part). The task's own checker (`grade`) reads which sound
word the answer names; it is used for evaluation and monitoring only.
Test-time shift: louder background noise and a higher pitch range than pre-training (SHIFT).

Model: a real transformers architecture, Qwen2-Audio (Qwen2AudioForConditionalGeneration): a
2-layer Whisper-style audio encoder on 80-bin log-mel features (WhisperFeatureExtractor, plain
numpy), a linear projector and a 2-layer Qwen2 language model with a character tokenizer, saved
with its Qwen2AudioProcessor so AutoProcessor and AutoModel load it like a hub model. Its feature
window is 1 s (100 mel frames -> 25 audio tokens); vLLM's Qwen2-Audio accepts only Whisper's 30 s
window (3000 frames), so on CPU this model runs on the hf engine.

    prompt:   "<|audio_bos|><|AUDIO|><|audio_eos|>Q: what sound?\\nA:"  (<|AUDIO|> -> 25 audio tokens)
    answer:   " i hear a chirp"

Scope: the sound generator, the shift, the checker, the tokenizer / processor / model config,
pre-training and the cache.
"""
import random
from pathlib import Path

import numpy as np
import torch

from data.build import cached, make_tokenizer, pad_answers, pretrain, save_built, word_named

SOUNDS = ["tone", "hiss", "chirp", "click"]
WORDINGS = ["{w}", "a {w}", "a {w} sound", "i hear a {w}", "it sounds like a {w}"]
QUESTION = "what sound?"
RATE = 16000  # samples per second: the feature extractor's rate
MARKER = "tinyaudio_build.json"  # written into the model folder: says which prompt format the model speaks (data/tasks.py)
ANSWER_FORMAT = "text"  # --answer-format for this task
# Everything that defines the built model; the cache key hashes it. Bump `version` when the builder changes.
BUILD = dict(
    version=2, seed=4321, n_test=200, seconds=1, mels=80,
    audio_hidden=64, audio_layers=2, audio_heads=2, hidden=96, layers=2, heads=3, kv_heads=1, intermediate=256,
    steps=600, batch=64, lr=3e-3, warmup=50, weight_decay=0.01, pool=4000, label_noise=0.25,
)
# Pre-training clips: pitch in [300, 1000] Hz, background noise std up to 0.05.
CLEAN = dict(pitch=(300.0, 1000.0), noise=(0.0, 0.05))
# The test-time shift: a higher pitch range and louder background noise.
SHIFT = dict(pitch=(800.0, 1600.0), noise=(0.02, 0.06))
CHARS = list("abcdefghijklmnopqrstuvwxyz:QA? \n")
SPECIALS = ["<pad>", "<eos>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


# ----------------------------------------------------------------------------- sounds, shift, checker
def make_clip(sound: str, rng: np.random.Generator, cond: dict = CLEAN, seconds: float = 1.0) -> np.ndarray:
    """One float32 waveform at RATE: the sound at a random pitch / loudness plus background noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(*cond["pitch"])
    amp = rng.uniform(0.3, 0.8)
    if sound == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif sound == "chirp":  # exponential sweep f0 -> 2.5 f0: the phase is the integral of the frequency
        k = np.log(2.5) / seconds
        x = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif sound == "hiss":
        x = np.clip(rng.normal(0, 0.5, t.shape), -1, 1)
    elif sound == "click":  # short decaying bursts of the pitch, 4-10 per second
        x = np.zeros_like(t)
        for onset in np.arange(rng.uniform(0, 0.1), seconds, 1 / rng.uniform(4, 10)):
            burst = t[: int(0.01 * RATE)]
            seg = np.sin(2 * np.pi * f0 * burst) * np.exp(-burst / 0.002)
            i = int(onset * RATE)
            x[i:i + len(seg)] += seg[: len(x) - i]
    else:
        raise ValueError(f"unknown sound {sound!r}: one of {SOUNDS}")
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms fade in / out: no step at the edges
    noise = rng.normal(0, rng.uniform(*cond["noise"]), t.shape)
    return (amp * x * fade + noise).astype(np.float32)


def grade(pred: str | None, truth: str) -> bool:
    """Correct if the answer names exactly one sound and it is the true one ("i hear a chirp" = "chirp";
    a plural counts: "clicks." = "click")."""
    return word_named(pred, SOUNDS, plurals=True) == truth


def test_split(shifted: bool = True, b: dict = BUILD, s: dict = SHIFT) -> list[dict]:
    """The unlabeled test clips as rows {"question", "answer", "audios": [(waveform, RATE)]}; balanced
    over the sounds, seeded; a different seed from pre-training, so no clip is shared."""
    rng = np.random.default_rng(b["seed"] + 1)
    sounds = [SOUNDS[i % len(SOUNDS)] for i in range(b["n_test"])]
    return [{"question": QUESTION, "answer": w, "audios": [(make_clip(w, rng, s if shifted else CLEAN, b["seconds"]), RATE)]}
            for w in sounds]


def prompt_text(question: str = QUESTION) -> str:
    return f"<|audio_bos|><|AUDIO|><|audio_eos|>Q: {question}\nA:"


# ----------------------------------------------------------------------------- tokenizer, processor, model
def make_processor(b: dict = BUILD):
    """Qwen2AudioProcessor = character tokenizer (Qwen2 class, as data/tinymath.py) + Whisper log-mel features."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    tok = make_tokenizer(SPECIALS, CHARS, {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                                           "audio_eos_token": "<|audio_eos|>"})
    features = WhisperFeatureExtractor(feature_size=b["mels"], sampling_rate=RATE, chunk_length=b["seconds"])
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=tok, chat_template=None)


def make_model(tok, b: dict = BUILD):
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration, Qwen2Config

    frames = b["seconds"] * 100  # Whisper features: 100 frames per second; the encoder's conv halves them
    audio = Qwen2AudioEncoderConfig(d_model=b["audio_hidden"], encoder_layers=b["audio_layers"],
                                    encoder_attention_heads=b["audio_heads"], encoder_ffn_dim=2 * b["audio_hidden"],
                                    num_mel_bins=b["mels"], max_source_positions=frames // 2)
    text = Qwen2Config(vocab_size=len(tok), hidden_size=b["hidden"], num_hidden_layers=b["layers"],
                       num_attention_heads=b["heads"], num_key_value_heads=b["kv_heads"],
                       # untied: Qwen2-Audio keeps lm_head apart from the embeddings whatever the text
                       # config says, and vLLM reads the text config (v1 said tied: vLLM served another model)
                       intermediate_size=b["intermediate"], max_position_embeddings=128, tie_word_embeddings=False,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    cfg = Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"))
    return Qwen2AudioForConditionalGeneration(cfg)


def build(out: Path, b: dict = BUILD) -> Path:
    """Pre-train on clean clips (a fixed pool, features computed once), teacher-forcing a random wording."""
    torch.manual_seed(b["seed"])
    rng = random.Random(b["seed"])
    nrng = np.random.default_rng(b["seed"])
    processor = make_processor(b)
    tok = processor.tokenizer
    model = make_model(tok, b)
    sounds = [rng.choice(SOUNDS) for _ in range(b["pool"])]
    clips = [make_clip(s, nrng, CLEAN, b["seconds"]) for s in sounds]
    enc = processor(text=[prompt_text()] * len(clips), audio=clips, sampling_rate=RATE, return_tensors="pt")
    prompt = enc["input_ids"][0].tolist()  # every clip is the same length: the same prompt tokens

    def next_batch() -> dict:
        idx = rng.sample(range(len(clips)), b["batch"])
        named = [rng.choice(SOUNDS) if rng.random() < b["label_noise"] else sounds[i] for i in idx]  # a careless labeller
        answers = [tok(" " + rng.choice(WORDINGS).format(w=w))["input_ids"] + [tok.eos_token_id] for w in named]
        return {**pad_answers(prompt, answers, tok.pad_token_id), "input_features": enc["input_features"][idx],
                "feature_attention_mask": enc["feature_attention_mask"][idx]}

    pretrain(model, next_batch, b, "building tiny-sounds model")
    return save_built(out, model, processor, MARKER, b)


def get_model(b: dict = BUILD) -> Path:
    return cached("tiny-sounds", b, build)


if __name__ == "__main__":  # accuracy on clean and shifted inputs: python projects/check_shift.py
    print(get_model())
