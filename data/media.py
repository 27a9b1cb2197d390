"""Images and audio in data files: decode them once at load time, so a broken file is an error
naming its row before any model work starts, never a crash hours into a run.

    python -m data.media clip.wav                # decode a file, print its length, rate and level

Images (--image-key): a cell holds one image or a list: a path (relative to the data file), a PIL
image, or a `datasets` image dict {"bytes", "path"}. Each becomes an RGB PIL image.

Audio (--audio-key): a cell holds one clip or a list: a path to a WAV file (relative to the data
file), a `datasets` audio dict ({"array", "sampling_rate"} decoded, or {"bytes", "path"}), or a
(waveform, sample_rate) pair. Each becomes (float32 mono waveform, sample_rate):
  - WAV is decoded by scipy (PCM 8/16/32-bit or float); other formats need the `soundfile`
    package (pip install soundfile), else the error says so;
  - several channels are averaged to mono; integer PCM is scaled to [-1, 1];
  - an empty waveform, or one holding NaN/inf, is an error naming the row;
  - the sample rate is kept: `resample` converts to the model's rate when the prompt is encoded
    (sample.encode_prompt), by polyphase filtering (scipy.signal.resample_poly). Resampling is
    documented, not an error: real data sets mix 16, 22.05, 44.1 and 48 kHz.
"""
import io
import math
import sys
from pathlib import Path

import numpy as np


def _cells(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) and not _is_pair(value) else [value]


def _is_pair(v) -> bool:
    """(waveform, rate): an array-like and a number."""
    return isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], (int, float)) and not isinstance(v[0], (str, bytes))


def _path(source, data: str) -> Path:
    p = Path(str(source))
    return p if p.is_absolute() else Path(data).parent / p


def open_images(value, data: str, row: int) -> list:
    """An image cell -> [RGB PIL images]."""
    from PIL import Image

    images = []
    for v in _cells(value):
        source = v.get("path") if isinstance(v, dict) else v
        try:
            if isinstance(v, Image.Image):
                img = v
            elif isinstance(v, dict) and v.get("bytes"):
                img = Image.open(io.BytesIO(v["bytes"]))
            else:
                img = Image.open(_path(source, data))
            images.append(img.convert("RGB"))  # decodes now: a broken file fails here, not mid-run
        except Exception as e:
            raise SystemExit(f"--data {data}: row {row}: cannot read image {source!r} ({type(e).__name__})") from None
    return images


def decode_audio(source) -> tuple[np.ndarray, int]:
    """Bytes, a file-like object or a path -> (float32 waveform (samples,) or (samples, channels), rate)."""
    from scipy.io import wavfile

    raw = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        rate, wave = wavfile.read(raw)
    except ValueError:  # not a WAV scipy can read: soundfile (libsndfile) reads FLAC, OGG, ... when installed
        try:
            import soundfile
        except ImportError:
            raise ValueError("not a PCM/float WAV file; other formats need `pip install soundfile`") from None
        if hasattr(raw, "seek"):
            raw.seek(0)
        wave, rate = soundfile.read(raw, dtype="float32")
    if np.issubdtype(wave.dtype, np.integer):  # PCM -> [-1, 1]; 8-bit WAV is unsigned, centred on 128
        info = np.iinfo(wave.dtype)
        wave = (wave.astype(np.float64) - (128 if wave.dtype == np.uint8 else 0)) / (2 ** (info.bits - 1))
    return np.asarray(wave, dtype=np.float32), int(rate)


def open_audios(value, data: str, row: int) -> list[tuple[np.ndarray, int]]:
    """An audio cell -> [(float32 mono waveform, sample rate)]."""
    clips = []
    for v in _cells(value):
        source = v.get("path") if isinstance(v, dict) else ("(waveform, rate)" if _is_pair(v) else v)
        try:
            if _is_pair(v):
                wave, rate = np.asarray(v[0], dtype=np.float32), int(v[1])
            elif isinstance(v, dict) and v.get("array") is not None:
                wave, rate = np.asarray(v["array"], dtype=np.float32), int(v["sampling_rate"])
            elif isinstance(v, dict) and v.get("bytes"):
                wave, rate = decode_audio(v["bytes"])
            else:
                wave, rate = decode_audio(_path(source, data))
        except Exception as e:
            raise SystemExit(f"--data {data}: row {row}: cannot decode audio {source!r} ({type(e).__name__}: {e})") from None
        wave = wave.mean(axis=1) if wave.ndim == 2 else wave  # (samples, channels) -> mono
        if wave.size == 0:
            raise SystemExit(f"--data {data}: row {row}: audio {source!r} is empty (0 samples)")
        if not np.isfinite(wave).all():
            raise SystemExit(f"--data {data}: row {row}: audio {source!r} holds NaN or inf samples")
        if rate <= 0:
            raise SystemExit(f"--data {data}: row {row}: audio {source!r} has sample rate {rate}")
        clips.append((wave, rate))
    return clips


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling by the exact ratio target / rate (anti-aliasing filter included)."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


if __name__ == "__main__":
    for f in sys.argv[1:]:
        [(w, r)] = open_audios(f, ".", 1)
        print(f"{f}: {len(w)} samples at {r} Hz = {len(w) / r:.2f} s, rms {np.sqrt((w ** 2).mean()):.3f}")
