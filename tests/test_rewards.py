"""Tests for answers.py (extraction, the grader, the vote) and rewards.py (the modes, TTRV's frequency reward). Run: python -m pytest tests/test_rewards.py -q"""

import math
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rewards
from answers import _parse, _parseable, extract_answer, grade, is_equivalent, majority_vote
from rewards import frequency_rewards

# ---------------------------------------------------------------------------
# extract_answer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),  # nested braces
        (r"first \boxed{1}, then \boxed{2}", "2"),  # the last box wins
        (r"\boxed{3} ... \boxed{4", "3"),  # an unclosed box is ignored
        (r"\boxed{5", None),  # ... and alone it is no answer
        (r"\fbox{6}", "6"),
        (r"\boxed{\boxed{1}}", "1"),  # "last" = the box that opens last
        (r"\boxed{ 7 }", "7"),  # whitespace stripped
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces are not grouping braces
        ("The answer is 42.", "42"),
        ("Therefore the answer is: $x^2$.\nDone.", "x^2"),  # up to end of line
        (r"the answer is 1 but \boxed{2}", "2"),  # boxed beats "the answer is"
        ("We get 12, then 15, so 3 apples.", None),  # no last-number fallback
        ("", None),
        (r"\boxed{}", None),  # empty box
        (r"\boxed{  }", None),
        (r"Thus $\boxed 5$.", "5"),  # a box without braces (TTRL's and verl's graders read it)
        (r"\boxed 42", "42"),
        (r"\boxed 7.", "7"),  # a sentence's punctuation is not the answer's
        (r"\boxed 9, so", "9"),
        (r"\boxed {8}", "8"),  # a space before the brace
        (r"\boxed{3}, then \boxed 4", "4"),  # the last box wins, braced or not
        (r"\boxed 4, then \boxed{3}", "3"),
        (r"the answer is 1, \boxed 2", "2"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "x" * 100_000 + r"\boxed{9}",
        r"\boxed{" * 20_000,  # many unclosed boxes: a naive rfind+scan would be quadratic
        "{" * 100_000,
        "\\" * 100_000,
        "the answer is " * 8_000,
    ],
)
def test_extract_answer_long_inputs_return_quickly(text):
    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 2.0  # generous: it takes milliseconds


# ---------------------------------------------------------------------------
# is_equivalent / grade
# ---------------------------------------------------------------------------

HALVES = ["1/2", "0.5", r"\frac{1}{2}", r"\dfrac{1}{2}"]


@pytest.mark.parametrize("a", HALVES)
@pytest.mark.parametrize("b", HALVES)
def test_halves_are_equivalent(a, b):
    assert is_equivalent(a, b)


def test_not_equivalent():
    assert not is_equivalent("1/2", "7")
    assert not is_equivalent("}", "7")  # unparseable vs parseable
    assert is_equivalent("}", "}")  # exact match needs no parsing


def test_grade():
    assert grade("0.5", "1/2")
    assert not grade("2", "1/2")
    assert not grade(None, "1/2")


def test_math_verify_errors_count_as_not_equal(monkeypatch):
    def broken_verify(*args, **kwargs):
        raise RuntimeError("boom")

    import math_verify  # rewards imports it on first use, by name: patch the module's function

    monkeypatch.setattr(math_verify, "verify", broken_verify)
    assert not is_equivalent("1/2", "0.5")


def test_off_main_thread_fails_loudly():
    # math_verify's signal.alarm timeouts only work in the main thread; the grader
    # must not silently degrade to exact string match there.
    errors = []

    def work():
        try:
            is_equivalent("3/4", "0.75")
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(errors) == 1


# ---------------------------------------------------------------------------
# majority_vote
# ---------------------------------------------------------------------------


def test_tie_goes_to_first_occurrence():
    vote = majority_vote(["3", "5", "5", "3"])
    assert vote.label == "3"
    assert vote.rewards.tolist() == [1, 0, 0, 1]
    assert vote.majority_ratio == 0.5


def test_equal_answers_vote_together():
    vote = majority_vote(["1/2", "7", "0.5", r"\frac{1}{2}", "7"])
    assert vote.label == "1/2"  # first surface form of the winning cluster
    assert vote.majority_ratio == pytest.approx(3 / 5)
    assert vote.rewards.tolist() == [1, 0, 1, 1, 0]
    assert vote.group_ids.tolist() == [0, 1, 0, 0, 1]
    assert vote.n_distinct == 2


def test_vote_output_types():
    vote = majority_vote(["1", "2", None])
    assert vote.rewards.dtype == np.float32 and vote.rewards.shape == (3,)
    assert np.issubdtype(vote.group_ids.dtype, np.integer) and vote.group_ids.shape == (3,)


def test_none_never_votes_and_gets_zero():
    vote = majority_vote([None, None, None, "4", "5", "5"])
    assert vote.label == "5"  # three Nones do not outvote anything
    assert vote.rewards.tolist() == [0, 0, 0, 0, 1, 1]
    assert vote.group_ids.tolist() == [-1, -1, -1, 0, 1, 1]
    assert vote.majority_ratio == pytest.approx(2 / 6)  # N counts the Nones
    assert vote.n_distinct == 2


@pytest.mark.parametrize("answers", [[], [None], [None, None, None]])
def test_no_answers_no_label(answers):
    vote = majority_vote(answers)
    assert vote.label is None
    assert vote.rewards.tolist() == [0.0] * len(answers)
    assert vote.group_ids.tolist() == [-1] * len(answers)
    assert vote.majority_ratio == 0.0
    assert vote.n_distinct == 0


def test_unparseable_answer_cannot_win():
    # `\boxed{\text{}}` extracts to "\text{}", which math_verify parses to [].
    assert _parse(r"\text{}") == ()
    vote = majority_vote([r"\text{}", r"\text{}", r"\text{}", "7", None])
    assert vote.label == "7"
    assert vote.rewards.tolist() == [0, 0, 0, 1, 0]
    assert vote.majority_ratio == pytest.approx(1 / 5)
    assert vote.n_distinct == 2  # the unparseable answers still form a cluster


def test_nothing_parses_falls_back_to_exact_string_vote():
    assert _parse("}") == () and _parse("$") == ()
    vote = majority_vote(["$", "}", "}", None])
    assert vote.label == "}"
    assert vote.rewards.tolist() == [0, 1, 1, 0]


def test_n_distinct_counts_clusters_not_strings():
    assert majority_vote(["1", "2", "3", "2"]).n_distinct == 3
    assert majority_vote(HALVES + ["2"]).n_distinct == 2


def test_verify_calls_scale_with_distinct_strings(monkeypatch):
    import math_verify  # rewards imports it on first use, by name: patch the module's function

    calls = []
    real_verify = math_verify.verify

    def counting_verify(gold, target):
        calls.append((gold, target))
        return real_verify(gold, target)

    monkeypatch.setattr(math_verify, "verify", counting_verify)
    answers = ["1", "2", "3", "4", "5"] * 12 + ["1"] * 4  # 64 answers, 5 distinct strings
    vote = majority_vote(answers)
    assert vote.label == "1" and vote.rewards.sum() == 16
    assert len(calls) <= 10  # at most one call per pair of distinct strings


def test_extract_then_vote_end_to_end():
    texts = [
        r"... so $\boxed{\frac{1}{2}}$",
        "I think the answer is 0.5.",
        r"\boxed{7}",
        "no idea",
    ]
    vote = majority_vote([extract_answer(t) for t in texts])
    assert vote.label == r"\frac{1}{2}"
    assert vote.rewards.tolist() == [1, 1, 0, 0]
    assert vote.majority_ratio == 0.5


# ---------------------------------------------------------------------------
# Properties on random groups
# ---------------------------------------------------------------------------

# Small alphabet with equal forms ("1/2" = "0.5"), an unparseable answer ("}")
# and no answer (None), so ties, merges and exclusions all happen often.
ALPHABET = [None, "1", "2", "1/2", "0.5", r"\frac{1}{2}", "}"]
groups = st.lists(st.sampled_from(ALPHABET), max_size=12)


@settings(max_examples=200, deadline=None)
@given(answers=groups, data=st.data())
def test_vote_properties(answers, data):
    n = len(answers)
    vote = majority_vote(answers)

    assert set(vote.rewards.tolist()) <= {0.0, 1.0}
    for ans, r, c in zip(answers, vote.rewards, vote.group_ids):
        if ans is None:
            assert r == 0 and c == -1

    if all(a is None for a in answers):
        assert vote.label is None and vote.majority_ratio == 0.0
        return

    assert vote.label in answers
    label_cluster = vote.group_ids[answers.index(vote.label)]
    assert np.array_equal(vote.rewards == 1, vote.group_ids == label_cluster)
    assert vote.majority_ratio == pytest.approx(vote.rewards.sum() / n)

    # Permuting the group permutes nothing that matters: same winning cluster size.
    order = data.draw(st.permutations(range(n)))
    shuffled = majority_vote([answers[i] for i in order])
    assert shuffled.rewards.sum() == vote.rewards.sum()
    assert shuffled.n_distinct == vote.n_distinct
    # With no tie for first place among the clusters allowed to win, the winner is
    # the same cluster, so the rewards just permute.
    pairs = zip(answers, vote.group_ids)
    can_win = {c for a, c in pairs if a is not None and _parseable(a)}
    if not can_win:  # nothing parses: every cluster can win
        can_win = set(vote.group_ids.tolist()) - {-1}
    sizes = [np.sum(vote.group_ids == c) for c in can_win]
    if sizes.count(max(sizes)) == 1:
        assert shuffled.rewards.tolist() == vote.rewards[order].tolist()


# --- TTRV: frequency reward and the two entropy forms ----------------------------------------

def test_frequency_reward_counts_equivalent_answers_together():
    # 1/2 and 0.5 are one answer with 3 votes of 5; "7" has 1; None has none.
    rewards = frequency_rewards(["1/2", "0.5", "7", None, "\\frac{1}{2}"])
    assert rewards.dtype == np.float32 and np.allclose(rewards, [3 / 5, 3 / 5, 1 / 5, 0.0, 3 / 5])


def test_entropy_forms_hand_computed():
    answers = ["3", "3", "3", "5"]  # p = (3/4, 1/4)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    literal = frequency_rewards(answers, 0.5, "literal")
    assert np.allclose(literal, np.array([0.75, 0.75, 0.75, 0.25]) - 0.5 * h / math.log(2))
    per_sample = frequency_rewards(answers, 0.5, "per-sample")
    assert np.allclose(per_sample, [0.75 + 0.5 * math.log(0.75)] * 3 + [0.25 + 0.5 * math.log(0.25)])
    assert math.isclose(np.mean(per_sample - frequency_rewards(answers)), -0.5 * h, rel_tol=1e-6)
    assert np.allclose(frequency_rewards(["4"] * 4, 0.5, "literal"), 1.0)  # one answer: H = 0


def test_entropy_terms_with_a_none_answer_hand_computed():
    # The docstring's example. p(a) counts the None in N: p("3") = 2/4, p("5") = 1/4.
    answers = ["3", "3", "5", None]
    assert np.allclose(frequency_rewards(answers), [0.5, 0.5, 0.25, 0.0])
    # literal: H over the answers given, q = (2/3, 1/3), normalised by ln 2 (two clusters): 0.918
    h_q = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert math.isclose(h_q / math.log(2), 0.9183, abs_tol=1e-4)
    literal = frequency_rewards(answers, 1.0, "literal") - frequency_rewards(answers)
    assert np.allclose(literal, -h_q / math.log(2))
    # per-sample: ln p(y_i), the None counting as an answer of its own met once (p = 1/4)
    per_sample = frequency_rewards(answers, 1.0, "per-sample") - frequency_rewards(answers)
    assert np.allclose(per_sample, [math.log(0.5), math.log(0.5), math.log(0.25), math.log(0.25)])
    # its mean is -H(1/2, 1/4, 1/4) = -1.040, the entropy with the None as its own answer
    h_tilde = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert math.isclose(per_sample.mean(), -h_tilde, rel_tol=1e-6) and math.isclose(h_tilde, 1.0397, abs_tol=1e-4)


def test_literal_entropy_cancels_under_group_normalisation_per_sample_does_not():
    import torch

    import grpo

    groups = [["3", "3", "3", "5"], ["1", "2", "2", None], ["8", "9", "8", "8"]]
    adv = {form: grpo.group_advantages(torch.tensor(np.stack(
        [frequency_rewards(g, 0.75 if form else 0.0, form or "literal") for g in groups])))
        for form in (None, "literal", "per-sample")}
    assert torch.allclose(adv["literal"], adv[None], atol=1e-6)  # the same constant per group: gone
    assert (adv["per-sample"] - adv[None]).abs().max() > 0.01  # survives: changes which rollouts win


def test_truth_baseline_by_hand():
    # The baseline that reads the true answers: 1 where the task's checker says right ("0.5" = "1/2").
    ctx = rewards.RewardContext([majority_vote(["3", "3", "0.5", None])], checker=grade, truths=["1/2"])
    r, labels = rewards.REWARDS["truth"]([["3", "3", "0.5", None]], ctx)
    assert r.tolist() == [[0.0, 0.0, 1.0, 0.0]] and labels == ["1/2"]
