"""Fuzz: every function that reads model output, on hostile strings. No exception, outputs in
range, bounded time (hypothesis' per-example deadline). Run:

    python -m pytest tests/infra/test_fuzz.py -q

Model output is arbitrary text: unicode, unbalanced braces, \\boxed{ without its }, 500-digit
numbers, 100k-character answers. A reward function that raises on one of them ends a run hours in.
"""
from datetime import timedelta

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from encoders import TfidfEncoder
from answers import extract_answer, grade, majority_vote
from semantic import centroid_rewards, cluster_rewards, empty_mask, judge_prompt, judge_rewards, parse_judge_score
from rewards import frequency_rewards

# Pieces model output is made of, glued at random: LaTeX that opens and never closes, huge numbers.
PIECES = ["\\boxed{", "\\fbox{", "}", "{", "\\frac{", "\\sqrt", "^", "_", "\\left(", "\\right)", "$", "\\\\",
          "the answer is ", "Score:", " ", "\n", "1", "-", "0.5", "/", "9" * 500, "1e308", "nan", "inf",
          "\u00bd", "\u221e", "\u2212", "\U0001f600", "\x00", "x=", "\\text{", "10", "11", "%", ","]
texty = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
HUGE = ["\\boxed{" + "1" * 100_000 + "}", "\\boxed{" + "{" * 50_000, "x" * 100_000 + "\\boxed{7}",
        "\\boxed{" + "\\frac{1}{" * 2_000 + "}"]
SLOW = settings(max_examples=40, deadline=timedelta(seconds=30))  # math-verify's own timeouts are 5 s per call


@SLOW
@given(texty)
@example(HUGE[0]).via("100k-digit answer")
@example(HUGE[1]).via("50k unclosed braces")
@example(HUGE[2]).via("100k chars before the answer")
@example(HUGE[3]).via("deep nesting")
def test_extract_and_grade(text):
    ans = extract_answer(text)
    assert ans is None or isinstance(ans, str)
    assert grade(ans, "7") in (True, False)
    if ans is not None:
        assert grade("7", ans) in (True, False)


@SLOW
@given(st.lists(st.one_of(st.none(), texty), min_size=1, max_size=12), st.floats(0, 2), st.sampled_from(["per-sample", "literal"]))
@example([None], 0.0, "per-sample").via("no answer in the group: found by this test, crashed before")
@example([None, None], 0.5, "literal")
def test_votes_and_frequency_rewards(answers, coef, form):
    vote = majority_vote(answers)
    assert set(np.unique(vote.rewards)) <= {0.0, 1.0} and 0 <= vote.majority_ratio <= 1
    freq = frequency_rewards(answers, coef, form, vote)
    assert np.isfinite(freq).all() and len(freq) == len(answers)
    # r1 = share of votes in [0, 1]; the entropy term lies in [-coef * ln(N), 0]
    assert (freq <= 1 + 1e-9).all() and (freq >= -coef * np.log(len(answers)) - 1 - 1e-9).all()


@SLOW
@given(st.lists(st.one_of(st.none(), texty), min_size=2, max_size=10), st.booleans())
@example(["\\boxed{" + "1" * 100_000, "1", None], True)
def test_semantic_rewards_in_range(answers, continuous):
    emb = TfidfEncoder().encode([a or "" for a in answers])
    empty = empty_mask(answers)
    for r in (centroid_rewards(emb, empty, "medoid"), centroid_rewards(emb, empty, "centroid"),
              cluster_rewards(emb, empty, 2, 4, continuous=continuous, seed=0)[0]):
        assert r.shape == (len(answers),) and np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()


@settings(max_examples=300, deadline=timedelta(seconds=2))
@given(texty)
@example("9" * 100_000).via("100k-digit score")
@example("-5").via("negative")
@example("Score: 11/10").via("over the top")
@example("9" * 400 + "/" + "9" * 400).via("overflows to inf/inf = nan: found by this test")
def test_judge_parser_in_range(reply):
    s = parse_judge_score(reply)
    assert 0.0 <= s <= 1.0
    r = judge_rewards([reply, "Score: 7"], np.array([False, True]))
    assert ((0 <= r) & (r <= 1)).all() and r[1] == 0.0  # an empty answer gets the lowest score


@settings(max_examples=100, deadline=timedelta(seconds=2))
@given(texty, st.one_of(st.none(), texty), st.one_of(st.none(), texty))
def test_judge_prompt_is_text(question, reference, answer):
    assert isinstance(judge_prompt(question, reference, answer), str)
