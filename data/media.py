"""Images, audio and video in data files: decode them once at load time, so a broken file is an
error naming its row before any model work starts, never a crash hours into a run.

    python -m data.media clip.wav                # decode a file, print its length, rate and level
    python -m data.media clip.mp4                # decode a video, print its frame count and the frames kept

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

Video (--video-key): a cell holds one clip: a video file path (relative to the data file; .mp4,
.webm, .mkv, .mov, .avi, ... decoded by PyAV, FFmpeg's Python binding), a folder of frame images
(taken in name order), a `datasets` video dict {"bytes", "path"}, a list of frames (PIL images,
arrays or `datasets` image dicts) or a (frames, H, W, 3) array. Each becomes K = --video-frames
RGB PIL images, sampled uniformly as video LLMs do: the clip's F frames are cut into K equal
segments and the middle frame of each is kept, frame floor((k + 1/2) F / K) for k = 0..K-1
(uniform_indices). Frames are scaled down so their longer side is at most --video-size pixels.
A clip that cannot be decoded, has no frames, or has fewer than K is an error naming its row and file.
"""
import io
import math
import re
import sys
from pathlib import Path

import numpy as np

VIDEO_FRAMES = 8  # frames per clip when --video-frames is not given (an embedded task may say otherwise)


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


def uniform_indices(total: int, k: int) -> list[int]:
    """The middle frame of each of k equal segments of a clip of `total` frames:
    floor((i + 1/2) * total / k) for i = 0..k-1. Needs total >= k (then the indices are distinct)."""
    return [int((i + 0.5) * total / k) for i in range(k)]


def decode_video(source, k: int) -> tuple[list[np.ndarray], int]:
    """A video file (path or bytes) -> (its k uniformly sampled frames as (H, W, 3) uint8 arrays, F).
    Two passes: the packets are counted first (no decoding), then only the chosen frames are kept,
    so a long clip never sits in memory whole."""
    import av

    def container():
        return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))

    with container() as c:
        total = sum(1 for packet in c.demux(video=0) if packet.size)  # one frame per non-empty packet
    if total < k:
        return [], total
    keep, frames = set(uniform_indices(total, k)), []
    with container() as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in keep:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames, total


def _frame_files(folder: Path) -> list[Path]:
    """A folder's image files in natural name order (frame_2 before frame_10)."""
    files = [f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp")]
    return sorted(files, key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])


def open_video(value, data: str, row: int, k: int, size: int = 0) -> list:
    """A video cell -> k RGB PIL frames (uniform_indices), the longer side scaled to at most `size` (0: as stored)."""
    from PIL import Image

    stored = isinstance(value, (list, tuple, np.ndarray))
    source = "(stored frames)" if stored else (value.get("path") or "(stored video)") if isinstance(value, dict) else value
    try:
        if stored:  # frames: PIL images, arrays or datasets image dicts
            frames, total = list(value), len(value)
            frames = [frames[i] for i in uniform_indices(total, k)] if total >= k else []
            frames = [open_images(f, data, row)[0] if isinstance(f, (dict, str)) else f for f in frames]
        elif isinstance(value, dict) and value.get("bytes"):
            frames, total = decode_video(value["bytes"], k)
        elif _path(source, data).is_dir():
            files = _frame_files(_path(source, data))
            total = len(files)
            frames = [Image.open(files[i]) for i in uniform_indices(total, k)] if total >= k else []
        else:
            frames, total = decode_video(_path(source, data), k)
        frames = [(f if isinstance(f, Image.Image) else Image.fromarray(np.asarray(f, dtype=np.uint8))).convert("RGB")
                  for f in frames]
    except SystemExit:
        raise
    except Exception as e:
        raise SystemExit(f"--data {data}: row {row}: cannot decode video {source!r} ({type(e).__name__}: {e})") from None
    if total == 0:
        raise SystemExit(f"--data {data}: row {row}: video {source!r} has no frames")
    if total < k:
        raise SystemExit(f"--data {data}: row {row}: video {source!r} has {total} frames, fewer than --video-frames {k}")
    if len(frames) < k:  # the container listed more frames than the decoder could give (a damaged clip)
        raise SystemExit(f"--data {data}: row {row}: video {source!r}: {len(frames)} of the {k} chosen frames decode "
                         f"(of {total} listed)")
    if size:
        frames = [_fit(f, size) for f in frames]
    return frames


def _fit(img, size: int):
    """Scale an image down (never up) so its longer side is at most `size` pixels."""
    scale = size / max(img.size)
    return img if scale >= 1 else img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling by the exact ratio target / rate (anti-aliasing filter included)."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


if __name__ == "__main__":
    for f in sys.argv[1:]:
        if Path(f).suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"):
            [(w, r)] = open_audios(f, ".", 1)
            print(f"{f}: {len(w)} samples at {r} Hz = {len(w) / r:.2f} s, rms {np.sqrt((w ** 2).mean()):.3f}")
        else:
            frames, total = decode_video(f, 1)
            print(f"{f}: {total} frames of {frames[0].shape[1]}x{frames[0].shape[0]}; with --video-frames 8 the frames "
                  f"kept are {uniform_indices(total, 8) if total >= 8 else 'none (too short)'}")
