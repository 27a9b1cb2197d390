"""What an answer is: extracted from a completion, judged right or equal to another, and voted on.

    python -m pytest tests/test_rewards.py tests/test_grading.py -q

Every reward mode (rewards.py), the evaluation (eval.py) and the monitoring (monitor.py) share these:
  extract / extract_answer   a completion -> its final answer (the last \\boxed{}, else "the answer is ...")
  is_equivalent, grade       math equality (math-verify), and the true-answer check built on it
  majority_vote -> Vote      TTRL's vote: equal answers grouped, the largest group of parseable answers wins
Plain Python and numpy, with math-verify (and through it sympy) for the math.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass

import numpy as np


# ---------------------------------------------------------------------------
# Extraction: a completion -> its answer
# ---------------------------------------------------------------------------

# One linear left-to-right tokenizer: a box opener, any backslash-escaped character
# (so `\{` and `\}` don't count as grouping braces), or a bare brace. Each alternative
# has a fixed length, so the regex cannot backtrack catastrophically.
_BRACE_TOKENS = re.compile(r"(?P<box>\\(?:boxed|fbox) ?\{)|\\.|(?P<open>\{)|(?P<close>\})", re.DOTALL)
# A box without braces, `\boxed 5` (LaTeX boxes the next token): the word after it, up to a space,
# `$` or a brace, as TTRL's and verl's graders read it.
_BARE_BOX = re.compile(r"\\(?:boxed|fbox) +([^\s${}]+)")
_ANSWER_IS = "the answer is"


def _last_boxed(text: str) -> tuple[int, str] | None:
    """(where its content starts, the content) of the closed box that opens last, braced or bare, or None."""
    braced = _last_braced(text)
    bare = None
    for bare in _BARE_BOX.finditer(text):
        pass  # the last one
    if bare is not None and (braced is None or bare.start(1) > braced[0]):
        return bare.start(1), bare.group(1).rstrip(".,;:")  # "Thus \boxed 5." -> "5": the sentence's punctuation
    return braced


def _last_braced(text: str) -> tuple[int, str] | None:
    """(start, content) of the closed `\boxed{...}` that opens last, found by brace matching."""
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
    return None if best is None else (best_start, best)


def normalize_text(text: str | None) -> str | None:
    """A free-text answer for exact-match voting: lower case, punctuation dropped, whitespace
    collapsed ("I hear a Chirp." -> "i hear a chirp"); None when nothing is left."""
    if not isinstance(text, str):
        return None
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split()) or None


def extract(text: str, answer_format: str = "boxed") -> str | None:
    """--answer-format: "boxed" -> extract_answer (math); "text" -> the whole response, normalised
    (open-ended QA, where the response is the answer)."""
    if answer_format == "boxed":
        return extract_answer(text)
    if answer_format == "text":
        return normalize_text(text)
    raise ValueError(f"unknown answer format {answer_format!r}: use boxed or text")


def extract_answer(text: str) -> str | None:
    """The final answer in a model response, or None:
    1. the content of the LAST closed `\\boxed{...}` or `\\fbox{...}` ("last" = the box that opens
       last), found by brace matching, so `\\boxed{\\frac{1}{2}}` works; an unclosed box is ignored,
       an empty box gives None; a box without braces, `\\boxed 5`, counts too (its word, up to a
       space, `$` or brace, without the sentence's trailing punctuation);
    2. else the rest of the line after the last "the answer is" (case-insensitive), with `:`, `$`,
       whitespace and a trailing period stripped;
    3. else None. There is deliberately no "last number in the text" fallback: in chain-of-thought
       working the last number is often an intermediate result, and a wrong extracted answer would
       still cast a vote."""
    if not isinstance(text, str):
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed[1].strip() or None  # an empty box is a non-answer, not a fall-through
    pos = text.lower().rfind(_ANSWER_IS)
    if pos < 0:
        return None
    rest = text[pos + len(_ANSWER_IS) :].split("\n", 1)[0]
    # "is: $42$." -> "42". Only a trailing period goes: a leading one may be ".5".
    rest = rest.strip().removeprefix(":").rstrip(" .").strip(" $").rstrip(" .")
    return rest or None


# ---------------------------------------------------------------------------
# Grading: is an answer equal to another? (rewards and evaluation alike)
# ---------------------------------------------------------------------------


def _require_main_thread() -> None:
    # math_verify enforces its timeouts with signal.alarm, which only works in the main
    # thread. Off it, every call would fail; swallowing that (-> False) would silently
    # turn the grader into exact string match, so fail loudly instead.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("answers: math_verify (signal.alarm timeouts) needs the main thread")


@functools.lru_cache(maxsize=1 << 16)
def _parse(ans: str) -> tuple:
    """math_verify's parse of `\\boxed{ans}`, cached: a group of 64 rollouts repeats answers."""
    _require_main_thread()
    from math_verify import parse  # imported on first use: it takes a second (sympy), flag checks should not wait

    try:
        # Wrapping in \boxed{} makes parse read the whole answer as one expression
        # instead of searching it for something that looks like an answer.
        # A sentence's full stop after a number ("5.") is not part of the answer.
        return tuple(parse("\\boxed{" + re.sub(r"(?<=\d)\.$", "", ans.strip()) + "}"))
    except Exception:
        return ()


def _parseable(ans: str) -> bool:
    return len(_parse(ans)) > 0


# Unicode math that math_verify does not read, as its ASCII / LaTeX form (plain_math)
_FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: " ", 0x2212: "-", 0x2012: "-", 0x2013: "-", 0xFE63: "-"}
_FRACTIONS = {chr(c): unicodedata.normalize("NFKC", chr(c)).replace("\u2044", "/")  # ½ -> "1/2"
              for c in [*range(0xBC, 0xBF), *range(0x2150, 0x215F), 0x2189]}
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+"))


def plain_math(ans: str) -> str:
    """An answer's unicode math in the form math_verify reads: full-width characters ("１００" -> "100"),
    the unicode minus and dashes ("−" -> "-"), vulgar fractions ("½" -> "1/2", a mixed number "3½" ->
    "(3+1/2)"), superscripts ("x²" -> "x^{2}"), roots ("√2" -> "\\sqrt{2}"). ASCII comes back unchanged."""
    if ans.isascii():
        return ans
    ans = ans.translate(_FULL_WIDTH)
    ans = re.sub(f"(\\d*)([{''.join(_FRACTIONS)}])",
                 lambda m: f"({m[1]}+{_FRACTIONS[m[2]]})" if m[1] else _FRACTIONS[m[2]], ans)
    ans = re.sub(f"[{''.join(_SUPERSCRIPTS)}]+", lambda m: "^{" + "".join(_SUPERSCRIPTS[c] for c in m[0]) + "}", ans)
    return re.sub(r"√(\d+(?:\.\d+)?|\w|\([^()]*\))", r"\\sqrt{\1}", ans)


def is_equivalent(a: str, b: str) -> bool:
    """True if answers a and b are mathematically equal: a == b as strings, else
    math_verify.verify(parse(boxed a), parse(boxed b)), both first through plain_math (unicode math as
    ASCII / LaTeX). `a` plays math_verify's "gold" role (verify is not quite symmetric). Errors ->
    False, except one: math_verify's timeouts use signal.alarm, so call it from the main thread; from
    any other thread it raises RuntimeError rather than grade wrong."""
    if a == b:
        return True  # fast path, and needs no parsing at all
    a, b = plain_math(a), plain_math(b)
    if a == b:
        return True  # fast path, and needs no parsing at all
    pa, pb = _parse(a), _parse(b)
    if not pa or not pb:
        return False
    _require_main_thread()
    from math_verify import verify

    try:
        return bool(verify(list(pa), list(pb)))
    except Exception:
        return False


def grade(pred: str | None, truth: str) -> bool:
    """Evaluation: is the extracted prediction equal to the true answer? None is wrong."""
    return pred is not None and is_equivalent(truth, pred)


def grade_text(pred: str | None, truth: str) -> bool:
    """Free-text answers without a task checker: normalised exact match (no math parsing: to
    math_verify "there" and "three" are the same product of symbols)."""
    return pred is not None and normalize_text(pred) == normalize_text(truth)


# ---------------------------------------------------------------------------
# The vote (TTRL): equal answers grouped, the largest group of parseable answers wins
# ---------------------------------------------------------------------------


def group_answers(answers: list[str | None], exact: bool = False) -> tuple[np.ndarray, list[str]]:
    """Group equal answers (exact: equal strings only, no math). Returns (group_ids, representatives).

    group_ids[i] is the cluster of answers[i] (-1 for None); representatives[c] is
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
            match = None if exact else next((c for c, rep in enumerate(reps) if is_equivalent(rep, ans)), None)
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
    group_ids: np.ndarray  # int (N,): cluster of each answer, -1 for None
    n_distinct: int  # number of clusters among the non-None answers


def majority_vote(answers: list[str | None], exact: bool = False) -> Vote:
    """TTRL's majority vote over one group's extracted answers y_1..y_N (None = no answer):
    - answers are grouped into clusters of mathematically equal answers (group_answers);
    - None never votes; answers math_verify cannot parse cannot win while any parseable answer
      exists (if nothing parses, this reduces to an exact-string vote);
    - the pseudo-label is the largest cluster; ties go to the cluster whose first member appears
      earliest in the input (TTRL's first-occurrence rule);
    - rewards_i = 1.0 if y_i is in the label's cluster else 0.0;
    - majority_ratio = (label cluster size) / N, N counting the None answers too.
    exact (--answer-format text, free-text answers): clusters are equal strings only, every string
    eligible: "a chirp" and "i hear a chirp" are two answers (the exact-match vote OP-TTRAV's
    semantic modes are compared against)."""
    n = len(answers)
    ids, reps = group_answers(answers, exact)
    if not reps:  # empty list or all None: nobody voted
        return Vote(None, np.zeros(n, dtype=np.float32), 0.0, ids, 0)

    sizes = np.bincount(ids[ids >= 0], minlength=len(reps))
    # A cluster's members share parseability: unparseable answers only ever match by
    # exact string. Unparseable clusters may win only if nothing parses at all.
    eligible = np.array([exact or _parseable(rep) for rep in reps])
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
        group_ids=ids,
        n_distinct=len(reps),
    )


def answer_entropy(vote: Vote) -> float:
    """Entropy (nats) of a group's answers, for monitoring: the clusters' shares p = size / N, the
    rollouts without an answer counted together as one more outcome. 0 when all N agree."""
    ids = vote.group_ids
    counts = np.append(np.bincount(ids[ids >= 0]), (ids < 0).sum()).astype(np.float64)
    p = counts[counts > 0] / max(len(ids), 1)
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: -0.0 -> 0.0
