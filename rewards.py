"""Rewards for test-time RL: answer extraction, the math grader, and TTRL's majority vote.

Scope: plain Python + numpy, no torch. Everything here works on one prompt's group of
N rollouts. The same grader (`is_equivalent`) is used for the pseudo-label rewards and
for evaluation against true labels, so "correct" means one thing across the repo.

Definitions
-----------
extract_answer(text)
    1. The content of the LAST closed `\\boxed{...}` or `\\fbox{...}` ("last" = the box
       that opens last), found by brace matching, so `\\boxed{\\frac{1}{2}}` works.
       An unclosed box is ignored. An empty box gives None.
    2. Else the rest of the line after the last "the answer is" (case-insensitive),
       with `:`, `$`, whitespace and a trailing period stripped.
    3. Else None. There is deliberately no "last number in the text" fallback: in
       chain-of-thought working the last number is often an intermediate result, and a
       wrong extracted answer would still cast a vote.

is_equivalent(a, b)
    True if a == b as strings, else math_verify.verify(parse(boxed a), parse(boxed b)).
    `a` plays math_verify's "gold" role (verify is not quite symmetric). Errors -> False,
    except one: math_verify's timeouts use signal.alarm, so call it from the main thread;
    from any other thread it raises RuntimeError rather than quietly grading wrong.

TTRL reward (majority_vote / ttrl_rewards), for answers y_1..y_N (None = no answer):
    - answers are grouped into clusters of mathematically equal answers;
    - None never votes; answers math_verify cannot parse cannot win while any parseable
      answer exists (if nothing parses, this reduces to an exact-string vote);
    - the pseudo-label is the largest cluster; ties go to the cluster whose first
      member appears earliest in the input (TTRL's first-occurrence rule);
    - reward_i = 1.0 if y_i is in the label's cluster else 0.0;
    - majority_ratio = (label cluster size) / N, N counting the None answers too.

TTRV reward (frequency_rewards), same clusters, p(a) = (size of a's cluster) / N:
    - reward_i = p(y_i), a soft majority (0 for None);
    - entropy term, H = -sum_a p(a) ln p(a) over the clusters, in one of two forms:
        "literal"    reward_i -= coef * H / ln(#clusters)   (TTRV's code; 0 when one cluster)
        "per-sample" reward_i += coef * ln p(y_i)            (None counts as p = 1/N)
      The literal term is the same number for every rollout of a prompt, so group-normalised
      advantages (r - mean) / std cancel it exactly: it has no effect on GRPO. The per-sample
      term differs between rollouts (rare answers lose more) and its group mean is -coef * H,
      so it survives normalisation and still rewards a low-entropy answer distribution.

Adding a reward mode means writing a new function on top of `cluster_answers`, which does the
expensive equivalence work once.

Tests: python -m pytest tests/test_rewards.py -q
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

import numpy as np
from math_verify import parse, verify

# ---------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------

# One linear left-to-right tokenizer: a box opener, any backslash-escaped character
# (so `\{` and `\}` don't count as grouping braces), or a bare brace. Each alternative
# has a fixed length, so the regex cannot backtrack catastrophically.
_BRACE_TOKENS = re.compile(r"(?P<box>\\(?:boxed|fbox)\{)|\\.|(?P<open>\{)|(?P<close>\})", re.DOTALL)
_ANSWER_IS = "the answer is"


def _last_boxed(text: str) -> str | None:
    """Content of the closed box that opens last, or None if there is none."""
    stack: list[int | None] = []  # per open brace: content start if it opened a box, else None
    best_start, best = -1, None
    for m in _BRACE_TOKENS.finditer(text):
        kind = m.lastgroup  # None for an escaped character: skip it
        if kind == "box":
            stack.append(m.end())
        elif kind == "open":
            stack.append(None)
        elif kind == "close" and stack:  # a stray "}" with nothing open is ignored
            start = stack.pop()
            if start is not None and start > best_start:
                best_start, best = start, text[start : m.start()]
    return best


def extract_answer(text: str) -> str | None:
    """The final answer in a model response (see the module docstring), or None."""
    if not isinstance(text, str):
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None  # an empty box is a non-answer, not a fall-through
    pos = text.lower().rfind(_ANSWER_IS)
    if pos < 0:
        return None
    rest = text[pos + len(_ANSWER_IS) :].split("\n", 1)[0]
    # "is: $42$." -> "42". Only a trailing period goes: a leading one may be ".5".
    rest = rest.strip().removeprefix(":").rstrip(" .").strip(" $").rstrip(" .")
    return rest or None


# ---------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------


def _require_main_thread() -> None:
    # math_verify enforces its timeouts with signal.alarm, which only works in the main
    # thread. Off it, every call would fail; swallowing that (-> False) would silently
    # turn the grader into exact string match, so fail loudly instead.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("rewards: math_verify (signal.alarm timeouts) needs the main thread")


@functools.lru_cache(maxsize=1 << 16)
def _parse(ans: str) -> tuple:
    """math_verify's parse of `\\boxed{ans}`, cached: a group of 64 rollouts repeats answers."""
    _require_main_thread()
    try:
        # Wrapping in \boxed{} makes parse read the whole answer as one expression
        # instead of searching it for something that looks like an answer.
        return tuple(parse("\\boxed{" + ans + "}"))
    except Exception:
        return ()


def _parseable(ans: str) -> bool:
    return len(_parse(ans)) > 0


def is_equivalent(a: str, b: str) -> bool:
    """True if answers a and b are mathematically equal (a is the reference side)."""
    if a == b:
        return True  # fast path, and needs no parsing at all
    pa, pb = _parse(a), _parse(b)
    if not pa or not pb:
        return False
    _require_main_thread()
    try:
        return bool(verify(list(pa), list(pb)))
    except Exception:
        return False


def grade(pred: str | None, truth: str) -> bool:
    """Evaluation: is the extracted prediction equal to the true answer? None is wrong."""
    return pred is not None and is_equivalent(truth, pred)


# ---------------------------------------------------------------------------
# Voting
# ---------------------------------------------------------------------------


def cluster_answers(answers: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Group equal answers. Returns (cluster_ids, representatives).

    cluster_ids[i] is the cluster of answers[i] (-1 for None); representatives[c] is
    the first surface form seen for cluster c. Clusters are numbered in order of first
    appearance, which is what makes the first-occurrence tie-break a plain argmax.
    Each new distinct string is compared only with the cluster representatives, so
    64 answers with 5 distinct strings cost at most 10 verify calls.
    """
    reps: list[str] = []
    cluster_of: dict[str, int] = {}  # distinct string -> cluster id
    ids = np.full(len(answers), -1, dtype=np.int64)
    for i, ans in enumerate(answers):
        if ans is None:
            continue
        if ans not in cluster_of:
            # The representative is the reference side; the first match wins. (Equality
            # is not guaranteed transitive, so the result can depend on input order.)
            match = next((c for c, rep in enumerate(reps) if is_equivalent(rep, ans)), None)
            if match is None:
                match = len(reps)
                reps.append(ans)
            cluster_of[ans] = match
        ids[i] = cluster_of[ans]
    return ids, reps


@dataclass
class Vote:
    label: str | None  # pseudo-label: first surface form of the winning cluster
    rewards: np.ndarray  # float32 (N,): 1.0 if in the winning cluster else 0.0
    majority_ratio: float  # winning cluster size / N (N includes None); 0.0 if no label
    cluster_ids: np.ndarray  # int (N,): cluster of each answer, -1 for None
    n_distinct: int  # number of clusters among the non-None answers
    in_label: np.ndarray  # bool (N,): the answer is in the winning cluster (TTRL's 0/1 reward as a mask)


def majority_vote(answers: list[str | None]) -> Vote:
    """TTRL's majority vote over one prompt's extracted answers (rules in module docstring)."""
    n = len(answers)
    ids, reps = cluster_answers(answers)
    if not reps:  # empty list or all None: nobody voted
        return Vote(None, np.zeros(n, dtype=np.float32), 0.0, ids, 0, np.zeros(n, dtype=bool))

    sizes = np.bincount(ids[ids >= 0], minlength=len(reps))
    # A cluster's members share parseability: unparseable answers only ever match by
    # exact string. Unparseable clusters may win only if nothing parses at all.
    eligible = np.array([_parseable(rep) for rep in reps])
    if not eligible.any():
        eligible[:] = True
    # np.argmax returns the first maximum; clusters are numbered by first appearance,
    # so this is exactly the first-occurrence tie-break.
    winner = int(np.argmax(np.where(eligible, sizes, -1)))

    rewards = (ids == winner).astype(np.float32)
    return Vote(
        label=reps[winner],
        rewards=rewards,
        majority_ratio=float(sizes[winner]) / n,
        cluster_ids=ids,
        n_distinct=len(reps),
        in_label=ids == winner,
    )


def frequency_rewards(answers: list[str | None], entropy_coef: float = 0.0, entropy_form: str = "per-sample") -> Vote:
    """TTRV's frequency reward (+ entropy term); the label fields are the majority vote's."""
    vote = majority_vote(answers)
    n = len(answers)
    ids = vote.cluster_ids
    sizes = np.bincount(ids[ids >= 0], minlength=vote.n_distinct).astype(np.float64)
    p_answer = np.where(ids >= 0, sizes[np.maximum(ids, 0)] / max(n, 1), 0.0)  # (N,) p(y_i)
    rewards = p_answer.copy()
    if entropy_coef:
        if entropy_form == "literal":
            p = sizes / sizes.sum() if sizes.sum() else sizes
            h = -(p * np.log(p)).sum() if len(p) > 1 else 0.0
            rewards -= entropy_coef * (h / np.log(len(p)) if len(p) > 1 else 0.0)
        elif entropy_form == "per-sample":
            rewards += entropy_coef * np.log(np.where(ids >= 0, p_answer, 1.0 / max(n, 1)))
        else:
            raise ValueError(f"unknown entropy form {entropy_form!r}: use literal or per-sample")
    vote.rewards = rewards.astype(np.float32)
    return vote


def ttrl_rewards(texts: list[str]) -> Vote:
    """TTRL reward for one prompt's group of rollouts: extract each answer, then vote."""
    return majority_vote([extract_answer(t) for t in texts])
