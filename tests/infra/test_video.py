"""OP-TTRAV's video path: decoding and frame sampling (data/media.py), the embedded clips
(data/tinyclips.py), and frames reaching the sampler and the trainer alike.

    python -m pytest tests/infra/test_video.py -q     # builds the tiny video model once (~3 min) if not cached
"""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import check_media_reach_the_trainer
import data.files
import data.prompts
import data.tasks
from data import media
from data import tinyclips as tc
from data.build import word_named
import train
from sample import encode_prompt, load_policy, load_processor, media_data


def write_video(path, n_frames: int, codec: str, size: int = 32, fps: int = 10):
    """A real clip written by PyAV's (FFmpeg's) encoder: frame i is a flat grey of level 20 * i, so a
    decoded frame tells which source frame it was."""
    import av

    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():  # flush the encoder's delayed frames
            c.mux(packet)


def level(frame) -> int:
    """Which source frame a decoded grey frame was (lossy codecs move the grey level a little)."""
    return round(np.asarray(frame, np.float32).mean() / 20)


# ----------------------------------------------------------------------------- frame sampling
def test_uniform_indices_by_hand():
    assert media.uniform_indices(10, 4) == [1, 3, 6, 8]  # floor(1.25, 3.75, 6.25, 8.75)
    assert media.uniform_indices(8, 4) == [1, 3, 5, 7]
    assert media.uniform_indices(4, 4) == [0, 1, 2, 3]
    assert media.uniform_indices(7, 1) == [3]


@pytest.mark.parametrize("suffix,codec", [(".mp4", "mpeg4"), (".mp4", "libx264"), (".webm", "libvpx")])
def test_a_real_video_file_decodes_to_the_frames_asked(tmp_path, suffix, codec):
    write_video(tmp_path / f"clip{suffix}", 10, codec)
    frames, total = media.decode_video(tmp_path / f"clip{suffix}", 4)
    assert total == 10 and len(frames) == 4 and frames[0].shape == (32, 32, 3)
    assert [level(f) for f in frames] == [1, 3, 6, 8]  # uniform_indices(10, 4)
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "q", "clip": f"clip{suffix}"}) + "\n")
    (row,) = data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"video": "clip"}, video_frames=4, video_size=16)
    assert len(row["video"]) == 4 and all(isinstance(f, Image.Image) and f.size == (16, 16) for f in row["video"])


def test_frame_folders_stored_frames_and_video_bytes(tmp_path):
    (tmp_path / "frames").mkdir()
    for i in range(12):  # natural order: frame_2 comes before frame_10
        Image.new("RGB", (8, 8), (20 * i,) * 3).save(tmp_path / "frames" / f"frame_{i}.png")
    write_video(tmp_path / "c.mp4", 6, "mpeg4")
    stored = [np.full((8, 8, 3), 20 * i, np.uint8) for i in range(5)]
    got = [media.open_video(v, str(tmp_path / "d.jsonl"), 1, 3) for v in
           ("frames", stored, np.stack(stored), {"bytes": (tmp_path / "c.mp4").read_bytes(), "path": None})]
    assert [[level(f) for f in frames] for frames in got] == [[2, 6, 10], [0, 2, 4], [0, 2, 4], [1, 3, 5]]


def test_video_size_scales_down_only():
    frames = [np.zeros((30, 60, 3), np.uint8)] * 2
    assert media.open_video(frames, "d.jsonl", 1, 2, size=20)[0].size == (20, 10)  # longer side 60 -> 20
    assert media.open_video(frames, "d.jsonl", 1, 2, size=100)[0].size == (60, 30)  # never up
    assert media.open_video(frames, "d.jsonl", 1, 2, size=0)[0].size == (60, 30)


# ----------------------------------------------------------------------------- bad clips: one line naming row and file
def test_bad_clips_name_their_row_and_file(tmp_path):
    write_video(tmp_path / "ok.mp4", 8, "mpeg4")
    write_video(tmp_path / "short.mp4", 2, "mpeg4")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00 not a video" * 20)
    (tmp_path / "empty").mkdir()
    cases = {"broken.mp4": r"row 2: cannot decode video 'broken.mp4'",
             "missing.webm": r"row 2: cannot decode video 'missing.webm'",
             "short.mp4": r"row 2: video 'short.mp4' has 2 frames, fewer than --video-frames 4",
             "empty": r"row 2: video 'empty' has no frames"}
    for clip, message in cases.items():
        (tmp_path / "d.jsonl").write_text("".join(json.dumps({"question": "q", "clip": c}) + "\n" for c in ("ok.mp4", clip)))
        with pytest.raises(SystemExit, match=message) as e:
            data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"video": "clip"}, video_frames=4)
        assert str(tmp_path / "d.jsonl") in str(e.value) and "\n" not in str(e.value)


def test_video_rows_to_a_text_model_are_one_line(tmp_path):
    write_video(tmp_path / "c.mp4", 8, "mpeg4")
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "1+1", "answer": "2", "clip": "c.mp4"}) + "\n")
    with pytest.raises(SystemExit, match="--data has video but --model tiny-math has no vision tower"):
        train.main(["--data", str(tmp_path / "d.jsonl"), "--video-key", "clip", "--engine", "hf", "--out", str(tmp_path / "r")])


def test_vllm_gets_a_video_as_one_frames_array():
    frames = [Image.new("RGB", (6, 4), (i, i, i)) for i in range(3)]
    mm = media_data({"text": "x", "videos": [frames]})
    assert mm["video"].shape == (3, 4, 6, 3) and mm["video"].dtype == np.uint8 and mm["video"][2, 0, 0, 0] == 2


# ----------------------------------------------------------------------------- the embedded clips
def centre(frame: np.ndarray) -> np.ndarray:
    """(x, y) of the bright square: the mean position of the pixels well above the noise."""
    ys, xs = np.nonzero(frame.mean(-1) > 100)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("cond", [tc.CLEAN, tc.SHIFT])
def test_clips_move_the_way_their_answer_says(cond):
    rng = np.random.default_rng(0)
    for direction, (dx, dy) in tc.DIRECTIONS.items():
        for _ in range(5):
            clip = tc.make_clip(direction, rng, cond)
            assert clip.shape == (8, 16, 16, 3) and clip.dtype == np.uint8
            move = centre(clip[-1]) - centre(clip[0])
            speed = np.hypot(*move) / 7
            assert np.sign(move.round()).tolist() == [dx, dy]
            assert cond["speed"][0] - 0.25 <= speed <= cond["speed"][1] + 0.25  # rounding to whole pixels


def test_the_shift_is_slower_and_noisier_and_the_split_is_balanced():
    clean, shifted = tc.test_split(shifted=False), tc.test_split()
    assert [r["answer"] for r in clean] == [r["answer"] for r in shifted]
    assert {d: [r["answer"] for r in shifted].count(d) for d in tc.DIRECTIONS} == {d: 50 for d in tc.DIRECTIONS}
    noise = [np.median([np.std(r["video"][0][r["video"][0].mean(-1) < 100]) for r in rows[:40]]) for rows in (clean, shifted)]
    assert noise[1] > 2 * noise[0]


def test_the_checker_reads_the_direction_word():
    assert tc.grade("the square moves left", "left") and tc.grade("it goes up", "up")
    assert not tc.grade("left or right", "left") and not tc.grade("leftish", "left") and not tc.grade(None, "up")


# ----------------------------------------------------------------------------- model, engines, trainer
@pytest.fixture(scope="module")
def vlm():
    path = str(tc.get_model())
    model, tok = load_policy(path)
    return path, model, tok, load_processor(model)


def test_frames_become_images_in_order(vlm):
    path, _, tok, processor = vlm
    row = data.files.load_rows("tiny-clips")[0]
    assert len(row["video"]) == 4  # 4 of the clip's 8 frames: the task's own --video-frames
    prompt = data.prompts.make_prompt(row["question"], tok, "tiny-clips", processor=processor, video=row["video"])
    assert prompt["text"] == tc.prompt_text() and prompt["images"] == row["video"] and "videos" not in prompt
    ids, mm = encode_prompt(prompt, tok, processor)
    assert ids.count(tok.convert_tokens_to_ids("<image>")) == 4 * 16 and mm["pixel_values"].shape == (4, 3, 16, 16)


def test_sampled_and_trained_logprobs_agree_on_video_prompts(vlm):
    path, model, tok, processor = vlm
    rows = data.files.load_rows("tiny-clips")[:4]
    prompts = data.prompts.make_prompts(rows, tok, path, "tiny-clips", processor=processor, answer_format="text")
    # the same frames played backwards: a clip moving the other way, which the log-probs must notice
    check_media_reach_the_trainer(model, tok, processor, prompts, 24, "pixel_values", lambda t: t.flip(0))


def test_the_model_reads_the_motion(vlm):
    """Pre-training worked: on clean clips greedy answers name the right direction most of the time,
    and reversing the frames flips them (the model reads the order of the frames, not one frame)."""
    path, model, tok, processor = vlm
    from sample import HFEngine

    engine = HFEngine(model, tok, processor=processor)
    rows = tc.test_split(shifted=False)[:40]
    for r in rows:
        r["video"] = media.open_video(r["video"], "tiny-clips", 1, 4)
    forward = [data.prompts.make_prompt(r["question"], tok, "tiny-clips", processor=processor, video=r["video"]) for r in rows]
    backward = [data.prompts.make_prompt(r["question"], tok, "tiny-clips", processor=processor, video=r["video"][::-1])
                for r in rows]
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    said = [[word_named(g[0].text, tc.DIRECTIONS) for g in engine.generate(p, n=1, temperature=0.0, max_tokens=28)]
            for p in (forward, backward)]
    assert np.mean([s == r["answer"] for s, r in zip(said[0], rows)]) >= 0.7
    assert np.mean([s == opposite[r["answer"]] for s, r in zip(said[1], rows)]) >= 0.6


def test_the_preset_runs_a_step_and_saves_the_model(vlm, tmp_path):
    path, model, _, _ = vlm
    out = train.main(["--preset", "tiny-clips", "--max-steps", "1", "--prompts-per-step", "4", "--eval-k", "0",
                      "--out", str(tmp_path / "run")])
    (m,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert m["update"] == "ok"
    trained, _ = load_policy(str(out / "final"))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert data.tasks.embedded_format(str(out / "final")) == "tiny-clips"


def test_a_video_file_trains_through_train_py(vlm, tmp_path):
    """A user's clips: mp4 files in a JSONL, no answers, through train.py on the tiny video model."""
    rng = np.random.default_rng(1)
    import av
    lines = []
    for i, d in enumerate(["left", "up"]):
        clip = tc.make_clip(d, rng)
        with av.open(str(tmp_path / f"c{i}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=8)
            s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
            for f in clip:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        lines.append(json.dumps({"question": tc.QUESTION, "clip": f"c{i}.mp4"}))
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    out = train.main(["--preset", "tiny-clips", "--data", str(tmp_path / "d.jsonl"), "--video-key", "clip",
                      "--max-steps", "1", "--prompts-per-step", "2", "--eval-k", "2", "--out", str(tmp_path / "run")])
    (m,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert "label_acc" not in m and m["response_len"] > 0  # no answers: label-free metrics only


def test_audio_and_video_in_one_row_for_a_model_with_a_video_input():
    """The Omni thinker's case, with a stand-in processor (Omni's own needs torchvision, a CUDA build
    on PyPI): a row with a clip and a sound gets a video and an audio placeholder, the frames go as
    a video (not as images), and vLLM receives both."""
    class OmniLike:
        chat_template, image_processor, video_processor, feature_extractor = "x", object(), object(), object()

        def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
            return " | ".join(p["type"] if p["type"] != "text" else p["text"] for p in msgs[-1]["content"])

    frames = [Image.new("RGB", (8, 8), (i, i, i)) for i in range(4)]
    clip = (np.zeros(1600, np.float32), 16000)
    prompt = data.prompts.make_prompt("what happens?", None, None, processor=OmniLike(), audios=[clip], video=frames,
                                      answer_format="text")
    assert prompt["text"] == "video | audio | what happens?"
    assert prompt["videos"] == [frames] and prompt["audios"] == [clip] and "images" not in prompt
    mm = media_data(prompt)
    assert mm["video"].shape == (4, 8, 8, 3) and mm["audio"] == [clip]
