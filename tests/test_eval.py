"""eval.py's metrics. Run: python -m pytest tests/test_eval.py -q"""
import itertools
import math

import pytest

from eval import evaluate, pass_at_k
from sample import Rollout


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 2), (6, 3, 4), (8, 1, 8), (7, 5, 3), (4, 4, 2)])
def test_pass_at_k_matches_brute_force(n, c, k):
    # Enumerate every k-subset of n samples (c of them correct) and count the subsets with a hit.
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), brute, rel_tol=1e-12)


class FixedEngine:
    """Returns canned completions: greedy text for n=1 calls, the sample list otherwise."""

    def __init__(self, greedy, samples):
        self.greedy, self.samples = greedy, samples

    def generate(self, prompts, n, temperature, top_p=1.0, max_tokens=64, seed=None):
        texts = self.greedy if temperature == 0 else self.samples
        return [[Rollout([], [], t, [], False) for t in (texts[i] if n > 1 else [texts[i]])] for i in range(len(prompts))]


def test_evaluate_hand_computed():
    # Q1 (truth 5): 1 of 4 samples right, majority says 7 (wrong), greedy right.
    # Q2 (truth 1/2): 3 of 4 right in two surface forms, majority right, greedy wrong.
    engine = FixedEngine(
        greedy=["\\boxed{5}", "\\boxed{3}"],
        samples=[["\\boxed{7}", "\\boxed{7}", "\\boxed{5}", "no answer"],
                 ["\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{2}", "\\boxed{0.5}"]],
    )
    summary, records = evaluate(engine, [{"text": "q1"}, {"text": "q2"}], ["5", "1/2"], k=4)
    assert summary == {"greedy": 0.5, "avg@4": (0.25 + 0.75) / 2, "maj@4": 0.5, "pass@4": 1.0, "n_questions": 2}
    assert records[0]["vote"] == "7" and records[1]["vote"] == "0.5"
