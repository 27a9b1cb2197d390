"""OP-TTRAV's semantic rewards, the pieces: the geometry of the answers' embeddings (medoid, centroid,
k-means cluster vote) and the LLM judge (its prompt, the reference it is shown, its score).

    python -m pytest tests/test_semantic_rewards.py -q

Each function works on one group's N answers; rewards.py's modes call them group by group. numpy,
with scikit-learn for k-means and the silhouette score (threadpoolctl keeps it on one thread).
"""

from __future__ import annotations

import re

import numpy as np


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


def judge_reference(answers: list[str | None], emb) -> tuple[int | None, str | None]:
    """The consensus reference shown to the judge: the medoid answer by embedding, emb (N, D) (any kind
    of text; order-free), as (index into answers, text), or (None, None) when no answer is there."""
    i = medoid_index(emb, empty_mask(answers))
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
