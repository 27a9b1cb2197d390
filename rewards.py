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

The modes see the whole step, so that all B*N answers are embedded (or judged) in one call. The
pieces, each on one group: answers.py (extraction, the math grader, TTRL's vote), TTRV's frequency
reward with its entropy term (below the table), semantic.py (OP-TTRAV's embedding geometry and
judge). This file is plain Python and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from answers import Vote, majority_vote
from semantic import cluster_rewards, centroid_rewards, empty_mask, judge_prompt, judge_reference, judge_rewards, medoid_index


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
    checker: Callable[[str | None, str], bool] | None = None  # truth baseline: (answer, truth) -> right? (data.tasks.checker)
    truths: list[str] | None = None  # (B,) the true answers: given to the truth baseline alone


# ---------------------------------------------------------------------------
# The reward modes: (answers (B x N), ctx) -> (rewards (B, N), labels (B,))
# ---------------------------------------------------------------------------


def majority(answers: list[list[str | None]], ctx: RewardContext) -> tuple[np.ndarray, list]:
    """TTRL: reward 1 if the answer is in the group's majority-vote cluster, else 0. Label: the vote.
    The vote of these answers is already in ctx.votes (ttrl_step votes once, for every mode's log)."""
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
    rewards = [[float(ctx.checker(a, t)) for a in group] for group, t in zip(answers, ctx.truths)]
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
# TTRV's frequency reward and its entropy term
# ---------------------------------------------------------------------------


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
    ids = vote.group_ids
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
