"""The synthetic task and tokenizer (no model needed). Run: python -m pytest tests/infra/test_tinymath.py -q"""
import random

from data import tinymath
from data.build import make_tokenizer
from answers import extract_answer


def test_clean_solutions_are_right():
    rng = random.Random(0)
    for _ in range(500):
        q = tinymath.make_question(rng, rng.choice((2, 3, 4)))
        assert extract_answer(tinymath.solve(q)) == tinymath.true_answer(q)
    assert tinymath.solve("347+295") == " 7+5=12 4+9+1=14 3+2+1=6 \\boxed{642}"


def test_slips_happen_at_about_the_set_rates():
    rng = random.Random(0)
    # 55+66: one carry into the tens column; a dropped carry gives 111 instead of 121.
    answers = [extract_answer(tinymath.solve("55+66", rng)) for _ in range(4000)]
    dropped = answers.count("111") / len(answers)
    assert abs(dropped - tinymath.SLIPS["drop_carry"] * (1 - tinymath.SLIPS["off_by_one"]) ** 2) < 0.03
    # 8+7 is written as 14 almost half the time: 18+17 = 34 is the runner-up to 35.
    answers = [extract_answer(tinymath.solve("18+17", rng)) for _ in range(4000)]
    assert answers.count("35") > answers.count("34") > 0.25 * len(answers)


def test_test_split_is_fixed_and_unique():
    a, b = tinymath.test_split(), tinymath.test_split()
    assert a == b and len({r["question"] for r in a}) == len(a) == tinymath.BUILD["n_test"]


def test_tokenizer_round_trip_survives_save_and_load(tmp_path):
    from transformers import AutoTokenizer

    tok = make_tokenizer(tinymath.SPECIALS, tinymath.CHARS)
    text = tinymath.prompt_text("347+295") + tinymath.solve("347+295")
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text)  # one token per character, spaces and newline included
    assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"] == ids  # what vLLM / eval.py load
