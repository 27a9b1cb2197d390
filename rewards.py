"""Rewards for test-time RL: every reward mode in one table, and the pieces they are built from.

    python -m pytest tests/test_rewards.py tests/test_semantic_rewards.py -q

A reward mode turns one step's answers into rewards, without ever seeing a true answer:

    rewards, labels = REWARDS[mode](answers, ctx)
        answers   B groups of N extracted answers (str, or None: no answer), the order of the rollouts
        ctx       RewardContext: each group's majority vote, the questions, the encoder, the judge, settings
        rewards   float (B, N): the reward of each rollout
        labels    B pseudo-labels (an answer, or None), logged against the truth (label accuracy)

| mode                 | paper    | reward of rollout i (answers y_1..y_N of one question)          | range  |
|----------------------|----------|------------------------------------------------------------------|--------|
| majority             | TTRL     | 1 if y_i equals the majority-vote answer (math-equal answers vote together) | {0, 1} |
| frequency            | TTRV     | share of the N votes y_i's answer got (+ the entropy term)       | [0, 1] |
| centroid             | OP-TTRAV | cos(embedding of y_i, the medoid answer's), clipped at 0         | [0, 1] |
| cluster              | OP-TTRAV | 1 if y_i is in the largest k-means cluster of the embeddings     | {0, 1} |
| cluster-continuous   | OP-TTRAV | (cos(y_i, the largest cluster's anchor) + 1) / 2                 | [0, 1] |
| judge                | OP-TTRAV | a judge model's 0-10 score of y_i against the medoid answer, / 10 | [0, 1] |
| truth (a baseline)   | TTRL     | 1 if y_i is right by the task's checker: READS THE TRUE ANSWERS   | {0, 1} |

`truth` is the one exception to "never a true answer": RL trained on the real answers, the upper
bound the TTRL paper compares against ("RL with leakage"). It is a baseline for comparison
(labs/beyond_the_vote.py), never a default; train.py refuses it on data without answers and hands
ctx.truths to this mode alone.

Adding a mode: one function with this signature and one entry in REWARDS (docs/rewards.md has an
example); a mode that calls ctx.embed also goes in USES_ENCODER, so train.py loads the encoder.

Below the table, the pieces, each on one group: extraction, the math grader (rewards and evaluation
share it), TTRL's vote, TTRV's entropy term, OP-TTRAV's embedding geometry and judge. Plain Python +
numpy; the modes see the whole step, so that all B*N answers are embedded (or judged) in one call.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class RewardContext:
    """What a reward mode may use besides the answers; train.py makes one per step."""

    votes: list  # (B,) Vote: TTRL's majority vote of each group, computed once per step for every mode
    questions: list[str] | None = None  # (B,) the questions (the judge shows them)
    embed: Callable[[list[str]], np.ndarray] | None = None  # texts -> unit rows (n, D) (encoders.py)
    judge: Callable[[list[str]], list[str]] | None = None  # judge prompts -> replies (greedy generation)
    entropy_coef: float = 0.0  # frequency: weight of TTRV's entropy term (0 = off)
    entropy_form: str = "per-sample"  # frequency: "per-sample" or "literal" (frequency_rewards)
    centroid_anchor: str = "medoid"  # centroid: "medoid" or "centroid" (centroid_rewards)
    cluster_k_min: int = 2  # cluster modes: the range of K tried by k-means
    cluster_k_max: int = 4
    seed: int = 0  # k-means seed
    grade: Callable[[str | None, str], bool] | None = None  # truth baseline: the task's checker (data/tasks.py)
    truths: list[str] | None = None  # (B,) the true answers: given to the truth baseline alone


# ---------------------------------------------------------------------------
# The reward modes: (answers (B x N), ctx) -> (rewards (B, N), labels (B,))
# ---------------------------------------------------------------------------


def majority(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """TTRL: reward 1 if the answer is in the group's majority-vote cluster, else 0. Label: the vote."""
    return np.stack([v.rewards for v in ctx.votes]), [v.label for v in ctx.votes]


def frequency(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """TTRV: the share of the group's votes the answer got, plus the entropy term. Label: the vote."""
    rewards = [frequency_rewards(a, ctx.entropy_coef, ctx.entropy_form, v) for a, v in zip(answers, ctx.votes)]
    return np.stack(rewards), [v.label for v in ctx.votes]


def centroid(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """OP-TTRAV: cosine to the medoid answer (or the mean direction), clipped at 0. Label: the medoid."""
    rewards, labels = [], []
    for group, emb in zip(answers, embed_groups(answers, ctx.embed)):
        empty = empty_mask(group)
        rewards.append(centroid_rewards(emb, empty, ctx.centroid_anchor))
        labels.append(_answer_at(group, medoid_index(emb, empty)))
    return np.stack(rewards), labels


def cluster(answers: list[list[str | None]], ctx: RewardContext, continuous: bool = False) -> tuple[np.ndarray, list]:
    """OP-TTRAV: k-means cluster vote, 1 in the largest cluster (continuous: similarity to its anchor).
    Label: the anchor answer."""
    rewards, labels = [], []
    for group, emb in zip(answers, embed_groups(answers, ctx.embed)):
        r, info = cluster_rewards(emb, empty_mask(group), ctx.cluster_k_min, ctx.cluster_k_max, continuous, ctx.seed)
        rewards.append(r)
        labels.append(_answer_at(group, info["anchor"]))
    return np.stack(rewards), labels


def cluster_continuous(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    return cluster(answers, ctx, continuous=True)


def judge(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """OP-TTRAV: ctx.judge (the policy, or --judge-model) scores every answer 0-10 against its group's
    medoid answer, all B*N prompts in one call; parsed score / 10, unreadable -> 0.5. Label: the medoid."""
    refs = [judge_reference(group, emb) for group, emb in zip(answers, embed_groups(answers, ctx.embed))]
    prompts = [judge_prompt(q, ref, a) for q, (_, ref), group in zip(ctx.questions, refs, answers) for a in group]
    replies = ctx.judge(prompts)  # (B*N,) in the order of the prompts
    n = len(answers[0])
    rewards = [judge_rewards(replies[b * n:(b + 1) * n], empty_mask(group)) for b, group in enumerate(answers)]
    return np.stack(rewards), [_answer_at(group, i) for group, (i, _) in zip(answers, refs)]


def truth(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """BASELINE, not test-time RL: 1 if the answer is right by the task's checker, else 0 (RL on the true
    answers). Label: the true answer."""
    rewards = [[float(ctx.grade(a, t)) for a in group] for group, t in zip(answers, ctx.truths)]
    return np.array(rewards), list(ctx.truths)


REWARDS = {
    "majority": majority,
    "frequency": frequency,
    "centroid": centroid,
    "cluster": cluster,
    "cluster-continuous": cluster_continuous,
    "judge": judge,
    "truth": truth,  # a baseline that reads the true answers (above)
}
USES_ENCODER = {"centroid", "cluster", "cluster-continuous", "judge"}  # modes that call ctx.embed


def embed_groups(answers: list[list[str | None]], embed) -> np.ndarray:
    """Every answer of the step embedded in ONE call (the tf-idf encoder fits on the texts of its call,
    so rows of one call compare); None as "". Returns (B, N, D)."""
    flat = [a or "" for group in answers for a in group]
    return embed(flat).reshape(len(answers), len(answers[0]), -1)


def _answer_at(group: list[str | None], i: int | None) -> str | None:
    return None if i is None else group[i]


# ---------------------------------------------------------------------------
# Extraction: a completion -> its answer
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
       an empty box gives None;
    2. else the rest of the line after the last "the answer is" (case-insensitive), with `:`, `$`,
       whitespace and a trailing period stripped;
    3. else None. There is deliberately no "last number in the text" fallback: in chain-of-thought
       working the last number is often an intermediate result, and a wrong extracted answer would
       still cast a vote."""
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
# Grading: is an answer equal to another? (rewards and evaluation alike)
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
# Voting (TTRL) and the frequency reward with its entropy term (TTRV)
# ---------------------------------------------------------------------------


def cluster_answers(answers: list[str | None], exact: bool = False) -> tuple[np.ndarray, list[str]]:
    """Group equal answers (exact: equal strings only, no math). Returns (cluster_ids, representatives).

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
    cluster_ids: np.ndarray  # int (N,): cluster of each answer, -1 for None
    n_distinct: int  # number of clusters among the non-None answers
    in_label: np.ndarray  # bool (N,): the answer is in the winning cluster (TTRL's 0/1 reward as a mask)


def majority_vote(answers: list[str | None], exact: bool = False) -> Vote:
    """TTRL's majority vote over one group's extracted answers y_1..y_N (None = no answer):
    - answers are grouped into clusters of mathematically equal answers (cluster_answers);
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
    ids, reps = cluster_answers(answers, exact)
    if not reps:  # empty list or all None: nobody voted
        return Vote(None, np.zeros(n, dtype=np.float32), 0.0, ids, 0, np.zeros(n, dtype=bool))

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
        cluster_ids=ids,
        n_distinct=len(reps),
        in_label=ids == winner,
    )


def frequency_rewards(answers: list[str | None], entropy_coef: float = 0.0, entropy_form: str = "per-sample",
                      vote: Vote | None = None) -> np.ndarray:
    """TTRV's frequency reward and entropy term for one group of N answers (None = no answer); float32 (N,).

    With the vote's clusters (equal answers together; pass `vote` = majority_vote(answers) to reuse them):
        p(a)     = |cluster of a| / N       N counts every rollout, None answers too
        reward_i = p(y_i), 0 for a None answer
    and, with entropy_coef > 0, one of two entropy terms:
        "literal"     reward_i -= coef * H(q) / ln K, over the K >= 2 clusters (0 when K <= 1), with
                      q(a) = |cluster of a| / (N - #None): the answers renormalised over the rollouts that
                      answered (TTRV's code). The same number for every rollout of the group, so the
                      group-normalised advantage (r - mean) / std cancels it exactly: no effect on GRPO.
        "per-sample"  reward_i += coef * ln p(y_i), a None answer counting as an answer of its own, met
                      once (p = 1/N). Its group mean is -coef * H(p~), the entropy of the group's answers
                      with each None its own answer (p~ = p when every rollout answered). It differs
                      between rollouts (rare answers lose more), so it survives normalisation.
    Example ["3", "3", "5", None]: p = 1/2, 1/2, 1/4, 0; literal term 0.918 (q = 2/3, 1/3: H = 0.637,
    / ln 2); per-sample terms ln 1/2, ln 1/2, ln 1/4, ln 1/4 (the None), mean -1.040 = -H(1/2, 1/4, 1/4).
    """
    vote = vote or majority_vote(answers)
    n = len(answers)
    ids = vote.cluster_ids
    # minlength >= 1: a group with no answer at all still indexes sizes[0] (masked out below)
    sizes = np.bincount(ids[ids >= 0], minlength=max(vote.n_distinct, 1)).astype(np.float64)
    p_answer = np.where(ids >= 0, sizes[np.maximum(ids, 0)] / max(n, 1), 0.0)  # (N,) p(y_i)
    rewards = p_answer.copy()
    if entropy_coef:
        if entropy_form == "literal":
            q = sizes / sizes.sum() if sizes.sum() else sizes  # (K,) over the rollouts that answered
            h = -(q * np.log(q)).sum() if len(q) > 1 else 0.0
            rewards -= entropy_coef * (h / np.log(len(q)) if len(q) > 1 else 0.0)
        elif entropy_form == "per-sample":
            rewards += entropy_coef * np.log(np.where(ids >= 0, p_answer, 1.0 / max(n, 1)))
        else:
            raise ValueError(f"unknown entropy form {entropy_form!r}: use literal or per-sample")
    return rewards.astype(np.float32)


def answer_entropy(vote: Vote) -> float:
    """Entropy (nats) of a group's answers, for monitoring: the clusters' shares p = size / N, the
    rollouts without an answer counted together as one more outcome. 0 when all N agree."""
    ids = vote.cluster_ids
    counts = np.append(np.bincount(ids[ids >= 0]), (ids < 0).sum()).astype(np.float64)
    p = counts[counts > 0] / max(len(ids), 1)
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: -0.0 -> 0.0


def ttrl_rewards(texts: list[str]) -> Vote:
    """TTRL reward for one prompt's group of rollouts: extract each answer, then vote."""
    return majority_vote([extract_answer(t) for t in texts])


# ---------------------------------------------------------------------------
# Embedding geometry (OP-TTRAV): medoid, centroid, k-means cluster vote
# ---------------------------------------------------------------------------

# OP-TTRAV's semantic rewards work on embeddings, not strings: E (N, D), one row per answer, made by
# encoders.py (rows are L2-normalised again here, so cos(i, j) = E_i . E_j; an all-zero row has cos 0
# with everything). `empty` (N,) marks answers that are None or whitespace only (empty_mask); an empty
# answer never counts towards a consensus and always gets its mode's minimum reward, 0.0. All of them
# are order-free: the rows are first put in a canonical order (by the bytes of each row), so the
# k-means start and every tie-break depend only on the SET of answers, and permuting the answers
# permutes the rewards exactly.

ONE_CLUSTER_COS = 0.9  # every pair at least this similar -> the group is one cluster (K = 1)


def empty_mask(answers: list[str | None]) -> np.ndarray:
    """bool (N,): True where an answer is None, not a string, or whitespace only."""
    return np.array([not (isinstance(a, str) and a.strip()) for a in answers], dtype=bool)


def _prepare(emb, empty) -> tuple[np.ndarray, np.ndarray]:
    """float64 (N, D) with unit (or all-zero) rows, and bool (N,); checks the shapes agree."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {emb.shape}")
    empty = np.asarray(empty, dtype=bool).reshape(-1)
    if len(empty) != len(emb):
        raise ValueError(f"{len(emb)} embeddings but {len(empty)} empty flags")
    emb = np.nan_to_num(emb)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)  # (N, 1)
    # A zero row stays zero (cos 0 with everything) instead of becoming NaN.
    return emb / np.maximum(norms, 1e-12), empty


def _canonical_order(emb: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """A row order that depends only on the rows' values, not on where they stand.

    Computing on emb[order] makes every result a function of the SET of answers: k-means++
    picks its start rows by position, and float sums depend on their order, so without this
    a shuffled group could get (slightly, or for k-means entirely) different rewards.
    Equal rows are interchangeable, so their relative order does not matter.
    """
    return np.array(sorted(range(len(emb)), key=lambda i: (bool(empty[i]), emb[i].tobytes())), dtype=np.int64)


def _cos_to(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """cos of each row of x (n, D) with v (D,), both unit: (n,).

    Row by row on purpose: a BLAS matrix-vector product may round equal rows differently
    depending on where they stand, and equal answers must get bit-equal rewards.
    """
    return (x * v).sum(axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _medoid(x: np.ndarray) -> int:
    """Row of x (n, D), n >= 1, with the highest mean cosine to the other rows (first on ties)."""
    if len(x) == 1:
        return 0
    sims = x @ x.T  # (n, n)
    mean_to_others = (sims.sum(axis=1) - np.diag(sims)) / (len(x) - 1)  # (n,)
    return int(np.argmax(mean_to_others))


def medoid_index(emb, empty) -> int | None:
    """Index of the medoid: the non-empty answer with the highest mean cosine to the other non-empty
    answers (ties: the first in canonical order); None if all are empty."""
    emb, empty = _prepare(emb, empty)
    order = _canonical_order(emb, empty)
    valid = order[~empty[order]]  # non-empty rows, in canonical order
    if len(valid) == 0:
        return None
    return int(valid[_medoid(emb[valid])])


def centroid_rewards(emb, empty, anchor: str = "medoid") -> np.ndarray:
    """OP-TTRAV's embedding reward: reward_i = clip(cos(E_i, reference), 0, 1), 0 for empty answers;
    float64 (N,) in [0, 1]. N equal answers all get 1.

    anchor="medoid" (OP-TTRAV's "centroid" mode, which really is a medoid): the reference is the
        medoid answer (medoid_index); it is a real answer, so its text can serve as the label.
    anchor="centroid": the reference is the normalised mean of the non-empty rows (a direction, not
        an answer; the answer nearest it is the label).
    """
    emb, empty = _prepare(emb, empty)
    order = _canonical_order(emb, empty)
    valid = order[~empty[order]]
    rewards = np.zeros(len(emb))
    if len(valid) == 0:
        return rewards
    if anchor == "medoid":
        reference = emb[valid[_medoid(emb[valid])]]  # (D,)
    elif anchor == "centroid":
        reference = _unit(emb[valid].mean(axis=0))  # (D,); summed in canonical order
    else:
        raise ValueError(f"unknown anchor {anchor!r}: use medoid or centroid")
    rewards[valid] = np.clip(_cos_to(emb[valid], reference), 0.0, 1.0)
    return rewards


def similarity_stats(emb, empty, duplicate_cos: float = 0.95) -> dict:
    """Collapse diagnostics (OP-TTRAV logs them): mean pairwise cosine and near-duplicate pair share."""
    emb, empty = _prepare(emb, empty)
    x = emb[~empty]
    if len(x) < 2:
        return {"mean_pairwise_cos": 1.0 if len(x) else 0.0, "near_duplicate_frac": 1.0 if len(x) else 0.0}
    pairs = (x @ x.T)[np.triu_indices(len(x), k=1)]  # (n(n-1)/2,) each unordered pair once
    return {"mean_pairwise_cos": float(pairs.mean()), "near_duplicate_frac": float((pairs >= duplicate_cos).mean())}


def _all_agree(x: np.ndarray, one_cluster_cos: float) -> bool:
    """The K = 1 rule: every pair of rows of x (n, D) has cosine >= one_cluster_cos."""
    return bool((x @ x.T).min() >= one_cluster_cos - 1e-9)  # slack: identical rows give 0.9999999


def _choose_clusters(x: np.ndarray, k_min: int, k_max: int, seed: int, one_cluster_cos: float):
    """Cluster labels (n,) for the non-empty rows x (n, D), and the winning silhouette (None if K = 1)."""
    one_cluster = np.zeros(len(x), dtype=np.int64), None
    n_distinct = len(np.unique(x, axis=0))
    if len(x) < 3 or n_distinct < 2 or _all_agree(x, one_cluster_cos):
        return one_cluster
    # Imported here so that the rest of rewards.py needs numpy only.
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    best_score, best_labels = -np.inf, None
    # A group is a tiny problem (64 points): OpenMP threads only add start-up and spin-wait
    # costs (measured 10x slower with 2 threads on a busy 2-core machine), so use one.
    with threadpool_limits(limits=1):
        # Silhouette needs 2 <= K <= n - 1; more clusters than distinct rows would leave some empty.
        for k in range(max(k_min, 2), min(k_max, n_distinct, len(x) - 1) + 1):
            labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)  # (n,)
            if len(np.unique(labels)) < 2:
                continue
            score = silhouette_score(x, labels, metric="cosine")
            if score > best_score:  # strict: ties keep the smaller K
                best_score, best_labels = float(score), labels
    if best_labels is None:  # k range empty (k_max < 2)
        return one_cluster
    return best_labels.astype(np.int64), best_score


def _renumber_modal_first(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 0, 1, ... by size (largest first), ties by tightness (tighter first)."""
    keys = []
    for c in np.unique(labels):
        members = x[labels == c]  # (m, D)
        tightness = float(_cos_to(members, _unit(members.mean(axis=0))).mean())
        keys.append((-len(members), -tightness, int(np.flatnonzero(labels == c)[0]), c))
    new_id = {c: rank for rank, (*_, c) in enumerate(sorted(keys))}
    return np.array([new_id[c] for c in labels], dtype=np.int64)


def cluster_rewards(
    emb,
    empty,
    k_min: int = 2,
    k_max: int = 4,
    continuous: bool = False,
    seed: int = 0,
    one_cluster_cos: float = ONE_CLUSTER_COS,
) -> tuple[np.ndarray, dict]:
    """OP-TTRAV's cluster vote. Returns (rewards float64 (N,), info).

    1. One cluster (K = 1) when every pair of non-empty answers has cos >= one_cluster_cos (0.9), or
       when there are fewer than 3 non-empty answers. The silhouette is undefined for K = 1 (and for
       any K with fewer than 3 points: it needs 2 <= K <= n - 1), so it cannot say "no split"; this
       rule does. (OP-TTRAV searches K >= 2 only, so its unanimous groups are cut in two and half the
       agreeing answers lose their reward.)
    2. Else scikit-learn KMeans (n_init=4, random_state=seed) for each K in
       [max(k_min, 2), min(k_max, distinct rows, n - 1)]; the K with the highest cosine silhouette
       wins (ties: the smaller K).
    3. Clusters are renumbered by size, largest first; equal sizes: the tighter one first (tightness
       = mean cos of the members to their normalised mean). Cluster 0 is the modal (consensus)
       cluster. The anchor is its member nearest its normalised mean.
    simple (continuous=False): reward_i = 1 if answer i is in the modal cluster else 0.
    continuous:                reward_i = (cos(E_i, E_anchor) + 1) / 2: a paraphrase of the anchor
                               scores near 1, an unrelated answer (cos ~ 0) about 0.5, an opposite one 0.
    Empty answers: 0 in both, and they take no part in the clustering.

    info: k (0 if every answer is empty), modal (the consensus cluster's id: always 0),
    anchor (index of the anchor answer, None if all empty), labels (int (N,), -1 for empty),
    silhouette (the chosen K's score; None when K <= 1).
    """
    emb, empty = _prepare(emb, empty)
    n = len(emb)
    order = _canonical_order(emb, empty)
    valid = order[~empty[order]]  # original indices of the non-empty answers, canonical order
    rewards, labels = np.zeros(n), np.full(n, -1, dtype=np.int64)
    if len(valid) == 0:
        return rewards, {"k": 0, "modal": None, "anchor": None, "labels": labels, "silhouette": None}

    x = emb[valid]  # (n_valid, D)
    local, silhouette = _choose_clusters(x, k_min, k_max, seed, one_cluster_cos)
    local = _renumber_modal_first(x, local)  # (n_valid,), cluster 0 = consensus
    modal = np.flatnonzero(local == 0)  # positions in x
    centre = _unit(x[modal].mean(axis=0))  # (D,)
    anchor = int(valid[modal[np.argmax(_cos_to(x[modal], centre))]])

    labels[valid] = local
    if continuous:
        rewards[valid] = np.clip((_cos_to(x, emb[anchor]) + 1.0) / 2.0, 0.0, 1.0)
    else:
        rewards[valid] = (local == 0).astype(np.float64)
    info = {"k": int(local.max()) + 1, "modal": 0, "anchor": anchor, "labels": labels, "silhouette": silhouette}
    return rewards, info


# ---------------------------------------------------------------------------
# LLM judge (OP-TTRAV): the prompt, the reference it is shown, the score parser, the aggregation
# ---------------------------------------------------------------------------

# A format string: {question}, {reference}, {answer}. Values may contain braces (LaTeX):
# str.format does not re-read substituted text.
JUDGE_TEMPLATE = (
    "You are grading an answer to a question against a reference answer.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Candidate answer: {answer}\n"
    "Does the candidate give the same final answer, with the same meaning, as the reference? "
    "Reply with one integer from 0 (different or wrong) to 10 (the same), and nothing else.\n"
    "Score:"
)


def judge_prompt(question: str, reference: str | None, answer: str | None) -> str:
    """The judge's prompt for one candidate answer (None is shown as an empty string)."""
    return JUDGE_TEMPLATE.format(question=question, reference=reference or "", answer=answer or "")


def judge_reference(answers: list[str | None], emb=None, how: str = "medoid") -> tuple[int | None, str | None]:
    """The consensus reference shown to the judge: (index into answers, text), or (None, None).

    how="medoid": the medoid answer by embedding (needs emb (N, D); any kind of text; order-free).
    how="vote": the first answer in TTRL's majority-vote winning cluster (math answers; ties
    by first occurrence, so this one depends on the order).
    """
    empty = empty_mask(answers)
    if how == "medoid":
        if emb is None:
            raise ValueError("judge_reference(how='medoid') needs the answers' embeddings")
        i = medoid_index(emb, empty)
    elif how == "vote":
        vote = majority_vote([None if e else a for a, e in zip(answers, empty)])
        i = int(np.argmax(vote.in_label)) if vote.label is not None else None
    else:
        raise ValueError(f"unknown reference {how!r}: use medoid or vote")
    return (None, None) if i is None else (i, answers[i])


_NUMBER = r"(-?\d+(?:\.\d+)?)(?:\s*/\s*(-?\d+(?:\.\d+)?))?"  # "7", "7.5", "8/10", "8 / 10"
_SCORED = re.compile(r"score\s*(?:is|of|=|:)?\s*" + _NUMBER, re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)
NEUTRAL_SCORE = 0.5


def parse_judge_score(text) -> float:
    """A judge reply -> a score in [0, 1]:
    - the number after "score" (e.g. "Score: 7", "score is 7"), else the first number;
    - "a/b" with 0 <= a <= b, b > 0 -> a / b ("8/10" -> 0.8, "4/5" -> 0.8);
    - a plain number in [0, 10] -> number / 10 ("7" -> 0.7, "7.5" -> 0.75);
    - no number, a number out of range ("11", "-1", "12/10") or too long for a float -> 0.5, neutral:
      a reply the parser cannot read should neither reward nor punish the answer."""
    if not isinstance(text, str):
        return NEUTRAL_SCORE
    m = _SCORED.search(text) or _ANY_NUMBER.search(text)
    if m is None:
        return NEUTRAL_SCORE
    value = float(m.group(1))
    if not np.isfinite(value):  # hundreds of digits overflow to inf (the fuzz test found "9...9/9...9" -> nan)
        return NEUTRAL_SCORE
    if m.group(2) is not None:  # a fraction "a/b"
        denominator = float(m.group(2))
        ok = np.isfinite(denominator) and denominator > 0 and 0 <= value <= denominator
        return value / denominator if ok else NEUTRAL_SCORE
    return value / 10 if 0 <= value <= 10 else NEUTRAL_SCORE


def judge_rewards(replies, empty) -> np.ndarray:
    """float64 (N,) in [0, 1]: the mean parsed score of each answer's judge replies; 0 if empty.

    replies[i] is one reply (str) or several (a list: judge samples, averaged) for answer i.
    """
    empty = np.asarray(empty, dtype=bool).reshape(-1)
    if len(replies) != len(empty):
        raise ValueError(f"{len(replies)} judge replies but {len(empty)} empty flags")
    rewards = np.zeros(len(empty))
    for i, reply in enumerate(replies):
        if not empty[i]:
            samples = [reply] if isinstance(reply, str) or reply is None else list(reply)
            rewards[i] = np.mean([parse_judge_score(s) for s in samples]) if samples else NEUTRAL_SCORE
    return rewards
