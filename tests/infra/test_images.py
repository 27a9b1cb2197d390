"""TTRV's image path on the embedded tiny vision-language model (data/tinydigits.py).

    python -m pytest tests/infra/test_images.py -q     # builds the tiny VLM once (~3 min) if not cached
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
from data import tinydigits as td
import train
from sample import encode_prompt, load_policy, load_processor, placeholder_ids


# ----------------------------------------------------------------------------- the shift
def blob():
    img = np.zeros((16, 16), np.float32)
    img[5:11, 6:10] = 1.0  # a bar well inside the border
    return img


def test_rotation():
    img = blob()
    assert np.allclose(td.rotate(img, 0), img)
    assert np.allclose(td.rotate(td.rotate(img, 90), -90), img, atol=1e-5)
    assert np.allclose(td.rotate(img, 90), np.rot90(img), atol=1e-5)  # same sense as numpy's rot90


def test_blur_keeps_mass_and_spreads_it():
    img = blob()
    out = td.blur(img, 0.7)
    assert abs(out.sum() - img.sum()) < 1e-3 * img.sum()  # the bar is far from the border
    assert out.max() < 1.0 and (out > 0).sum() > (img > 0).sum()


def test_noise_is_seeded_and_clipped():
    img = blob()
    a = td.add_noise(img, 0.3, np.random.default_rng(0))
    b = td.add_noise(img, 0.3, np.random.default_rng(0))
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(td.add_noise(img, 0.0, np.random.default_rng(1)), img)


def test_corrupt_is_deterministic_and_in_range():
    img = td.digits()[0][0]
    a, b = td.corrupt(img, np.random.default_rng(5)), td.corrupt(img, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.shape == (16, 16) and 0 <= a.min() and a.max() <= 1
    assert not np.allclose(a, img)


def test_split_keeps_test_images_out_of_pretraining():
    pre, test = td.split()
    assert len(test) == td.BUILD["n_test"] and not set(pre) & set(test) and len(pre) + len(test) == 1797


# ----------------------------------------------------------------------------- processor and model
@pytest.fixture(scope="module")
def vlm():
    path = str(td.get_model())
    model, tok = load_policy(path)
    return path, model, tok, load_processor(model)


def test_processor_round_trip(vlm):
    path, _, tok, processor = vlm
    img = td.to_image(td.digits()[0][3])
    fresh = td.make_processor()(text=[td.prompt_text()], images=[img], return_tensors="pt")
    loaded = processor(text=[td.prompt_text()], images=[img], return_tensors="pt")
    assert fresh.keys() == loaded.keys() and all(torch.equal(fresh[k], loaded[k]) for k in fresh)
    ids, mm = encode_prompt({"text": td.prompt_text(), "images": [img]}, tok, processor)
    assert ids.count(tok.convert_tokens_to_ids("<image>")) == 64  # (16 / 2)^2 patches
    assert mm["pixel_values"].shape == (1, 3, 16, 16)
    assert placeholder_ids(tok, processor) == [tok.convert_tokens_to_ids("<image>")]


def test_sampled_and_trained_logprobs_agree_on_image_prompts(vlm):
    path, model, tok, processor = vlm
    rows = td.test_split()[:4]
    prompts = [data.prompts.make_prompt(r["question"], tok, "tiny-digits", images=r["images"]) for r in rows]
    check_media_reach_the_trainer(model, tok, processor, prompts, 12, "pixel_values", torch.zeros_like)  # black images


def test_a_ttrv_step_changes_the_parameters(vlm, tmp_path):
    path, model, _, _ = vlm
    out = train.main(["--preset", "tiny-digits", "--engine", "hf", "--max-steps", "1", "--prompts-per-step", "4",
                      "--eval-k", "0", "--out", str(tmp_path / "run")])
    (m,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert m["update"] == "ok"
    trained, _ = load_policy(str(out / "final"))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert load_processor(trained) is not None and data.tasks.embedded_format(str(out / "final")) == "tiny-digits"


def test_single_example_adapts_on_one_image(tmp_path):
    out = train.main(["--preset", "tiny-digits", "--engine", "hf", "--adapt-on", "1", "--max-steps", "2", "--eval-k", "0",
                      "--out", str(tmp_path / "one")])
    assert [json.loads(line)["step"] for line in open(out / "metrics.jsonl")] == [1, 2]


# ----------------------------------------------------------------------------- bad input
def test_unreadable_image_names_row_and_file(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "q", "answer": "1", "img": "ok.png"}) + "\n" +
                                      json.dumps({"question": "q", "answer": "2", "img": "broken.png"}) + "\n")
    with pytest.raises(SystemExit, match=r"row 2: cannot read image 'broken.png'") as e:
        data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"images": "img"})
    assert str(tmp_path / "d.jsonl") in str(e.value)


def test_image_rows_load_relative_to_the_file(tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "q", "answer": "1", "img": "red.png"}) + "\n")
    (row,) = data.files.load_rows(str(tmp_path / "d.jsonl"), extra_keys={"images": "img"})
    assert row["images"][0].getpixel((0, 0)) == (255, 0, 0)


def test_image_prompt_to_a_text_model_is_one_line(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "1+1", "answer": "2", "img": "a.png"}) + "\n")
    with pytest.raises(SystemExit, match="--data has images but --model tiny-math has no vision tower"):
        train.main(["--data", str(tmp_path / "d.jsonl"), "--image-key", "img", "--engine", "hf", "--out", str(tmp_path / "r")])
