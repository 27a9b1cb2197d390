"""Paraphrase toy: which reward modes find the right pseudo-label when right answers are worded differently?

Each group is one question's N answers. The correct answer n is written in several surface forms
("7", "seven", "the answer is seven", "7.0", "It is 7.", "Seven."); the wrong answers are nearby
numbers 0-20 (scattered), mostly written plainly as digits, plus a few empty or garbage answers. So the correct
MEANING usually has the most votes while no single correct STRING does.

For each mode the demo reports, over all groups:
    label acc   the mode's pseudo-label (the voted answer, the medoid, the cluster anchor, the judge's
                reference) means the true number;
    AUC         P(reward of a correct answer > reward of a wrong one) within a group (ties count
                half), averaged over groups with both: what GRPO's group-normalised advantage sees;
    gap         mean reward of correct answers minus mean reward of wrong ones (all groups pooled).
"judge (fixed scorer)" runs the real judge pipeline (judge_reference -> judge_prompt -> reply ->
parse_judge_score -> judge_rewards) with a deterministic stand-in for the LLM: it reads the
reference and the candidate back from the prompt and replies 10 when both name the same number
(number words understood), else 0, in varied reply formats.

Then the cost of each mode for 512 prompts x 64 answers: embedding time (per encoder) apart from
reward time. The cost answers carry a unique justification ("... since 3 + 4 = 7") so that no
string repeats: the worst case for the encoders, which embed each distinct string once. The votes
see the short answers. The slow parts are timed on a slice and scaled linearly to the full
workload (marked "scaled"): MiniLM embedding on --minilm-cost-prompts prompts, and the math-verify
votes (which parse number words as products of symbols) on --vote-cost-prompts prompts; the rest
is measured on all of it.

Run: python projects/paraphrase_demo.py        (about 2 minutes on 2 CPU cores)
     python projects/paraphrase_demo.py --groups 50 --cost-prompts 64 --minilm-cost-prompts 4 --vote-cost-prompts 2
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: its modules by name
import rewards  # noqa: E402
import semantic  # noqa: E402
from answers import majority_vote  # noqa: E402
from encoders import load_encoder  # noqa: E402

WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen \
sixteen seventeen eighteen nineteen twenty".split()
GARBAGE = ["", "  ", "I am not sure.", "???", "\\boxed{"]


# ---------------------------------------------------------------------------
# The toy
# ---------------------------------------------------------------------------


def surface_forms(n: int) -> list[str]:
    w = WORDS[n]
    return [str(n), w, f"the answer is {w}", f"{n}.0", f"It is {n}.", f"{w.capitalize()}."]


def make_group(rng: np.random.Generator, n_answers: int) -> tuple[int, list[str]]:
    """(true number, answers): 25-55% correct in random forms; wrong: other numbers, mostly digits."""
    truth = int(rng.integers(3, 18))
    n_correct = int(rng.integers(round(0.25 * n_answers), round(0.55 * n_answers) + 1))
    n_garbage = int(rng.integers(0, max(2, n_answers // 8)))
    answers = [str(rng.choice(surface_forms(truth))) for _ in range(n_correct)]
    wrong_values = [v for v in range(len(WORDS)) if v != truth]  # scattered: any other number
    for _ in range(n_answers - n_correct - n_garbage):
        value = int(rng.choice(wrong_values))
        # Wrong answers are mostly written plainly: a repeated "12" can then beat a correct
        # answer split over six spellings in an exact-string vote.
        answers.append(str(value) if rng.random() < 0.6 else str(rng.choice(surface_forms(value))))
    answers += [str(rng.choice(GARBAGE)) for _ in range(n_garbage)]
    rng.shuffle(answers)
    return truth, answers


_NUMBER_WORD = re.compile(r"\b(" + "|".join(WORDS) + r")\b", re.IGNORECASE)
_DIGITS = re.compile(r"-?\d+(?:\.0+)?\b")


def meaning(text: str | None) -> int | None:
    """The number an answer names (digits or a number word), None if it names none."""
    if not text:
        return None
    m = _DIGITS.search(text)
    if m:
        return int(float(m.group()))
    m = _NUMBER_WORD.search(text)
    return WORDS.index(m.group(1).lower()) if m else None


# ---------------------------------------------------------------------------
# The modes: each returns (pseudo-label text, rewards (N,))
# ---------------------------------------------------------------------------


def exact_string_vote(answers, emb=None):
    counts = Counter(a for a in answers if a.strip())
    label = counts.most_common(1)[0][0] if counts else None  # ties: first seen
    return label, np.array([float(a == label) for a in answers])


def as_votes(answers):
    return [a if a.strip() else None for a in answers]


def equivalence_vote(answers, emb=None):
    vote = majority_vote(as_votes(answers))  # math-verify: "7" = "7.0", but not "seven"
    return vote.label, vote.rewards.astype(np.float64)


def number_word_vote(answers, emb=None):
    normalised = [None if meaning(a) is None else str(meaning(a)) for a in answers]
    vote = majority_vote(normalised)
    return vote.label, vote.rewards.astype(np.float64)


def centroid_mode(anchor):
    def run(answers, emb):
        r = semantic.centroid_rewards(emb, semantic.empty_mask(answers), anchor)
        if anchor == "medoid":
            i = semantic.medoid_index(emb, semantic.empty_mask(answers))
        else:
            i = int(np.argmax(r))  # the answer nearest the mean direction
        return (None if i is None else answers[i]), r

    return run


def cluster_mode(continuous):
    def run(answers, emb):
        r, info = semantic.cluster_rewards(emb, semantic.empty_mask(answers), continuous=continuous)
        return (None if info["anchor"] is None else answers[info["anchor"]]), r

    return run


REPLY_FORMATS = ["{s}", "Score: {s}", "{s}/10"]  # exercise the parser's forms


def fixed_scorer(prompt: str, k: int) -> str:
    """Stand-in LLM judge: 10 if the candidate names the reference's number, else 0."""
    reference = re.search(r"^Reference answer: (.*)$", prompt, re.M).group(1)
    candidate = re.search(r"^Candidate answer: (.*)$", prompt, re.M).group(1)
    same = meaning(candidate) is not None and meaning(candidate) == meaning(reference)
    return REPLY_FORMATS[k % len(REPLY_FORMATS)].format(s=10 if same else 0)


def vote_reference(answers) -> str | None:
    """The judge's other reference here: the first answer in TTRL's winning cluster (math answers; ties
    by first occurrence, so it depends on the order; semantic.judge_reference takes the medoid)."""
    empty = semantic.empty_mask(answers)
    vote = majority_vote([None if e else a for a, e in zip(answers, empty)])
    return None if vote.label is None else answers[int(np.argmax(vote.rewards))]


def judge_mode(how):
    def run(answers, emb):
        reference = semantic.judge_reference(answers, emb)[1] if how == "medoid" else vote_reference(answers)
        empty = semantic.empty_mask(answers)
        replies = [
            "" if e else fixed_scorer(semantic.judge_prompt("What is the number?", reference, a), k)
            for k, (a, e) in enumerate(zip(answers, empty))
        ]
        return reference, semantic.judge_rewards(replies, empty)

    return run


EMBEDDING_MODES = {
    "centroid (medoid anchor)": centroid_mode("medoid"),
    "centroid (mean anchor)": centroid_mode("centroid"),
    "cluster": cluster_mode(False),
    "cluster-continuous": cluster_mode(True),
    "judge, fixed scorer (ref = medoid)": judge_mode("medoid"),
}
STRING_MODES = {
    "exact-string vote": exact_string_vote,
    "equivalence vote (math-verify)": equivalence_vote,
    "equivalence vote + number words": number_word_vote,
    "judge, fixed scorer (ref = vote)": judge_mode("vote"),
}


# ---------------------------------------------------------------------------
# Scoring and the tables
# ---------------------------------------------------------------------------


def group_auc(r: np.ndarray, correct: np.ndarray) -> float | None:
    pos, neg = r[correct], r[~correct]
    if len(pos) == 0 or len(neg) == 0:
        return None
    diff = pos[:, None] - neg[None, :]  # (n_pos, n_neg)
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def evaluate(mode, groups, embeddings) -> tuple[float, float, float]:
    """(label accuracy, mean within-group AUC, reward gap) of one mode over all groups."""
    hits, aucs, r_right, r_wrong = [], [], [], []
    for (truth, answers), emb in zip(groups, embeddings):
        label, r = mode(answers, emb)
        correct = np.array([meaning(a) == truth for a in answers])
        hits.append(meaning(label) == truth)
        auc = group_auc(r, correct)
        if auc is not None:
            aucs.append(auc)
        r_right += r[correct].tolist()
        r_wrong += r[~correct].tolist()
    return float(np.mean(hits)), float(np.mean(aucs)), float(np.mean(r_right) - np.mean(r_wrong))


def embed_groups(encoder, groups) -> tuple[list[np.ndarray], float]:
    """All groups' answers in ONE encode call (batched), split back per group; and the seconds."""
    texts = [a for _, answers in groups for a in answers]
    start = time.perf_counter()
    emb = encoder.encode(texts)  # (total answers, D)
    seconds = time.perf_counter() - start
    bounds = np.cumsum([0] + [len(answers) for _, answers in groups])
    return [emb[a:b] for a, b in zip(bounds[:-1], bounds[1:])], seconds


def accuracy_table(groups, encoders):
    print(f"\n### Pseudo-label accuracy: {len(groups)} groups x {len(groups[0][1])} answers\n")
    print("| mode | encoder | label acc | AUC (correct > wrong) | reward gap |")
    print("|---|---|---|---|---|")
    for name, mode in STRING_MODES.items():
        acc, auc, gap = evaluate(mode, groups, [None] * len(groups))
        print(f"| {name} | - | {acc:.3f} | {auc:.3f} | {gap:+.3f} |")
    for enc_name, encoder in encoders.items():
        embeddings, _ = embed_groups(encoder, groups)
        for name, mode in EMBEDDING_MODES.items():
            acc, auc, gap = evaluate(mode, groups, embeddings)
            print(f"| {name} | {enc_name} | {acc:.3f} | {auc:.3f} | {gap:+.3f} |")


SLOW_MODES = {"equivalence vote (math-verify)", "judge, fixed scorer (ref = vote)"}


def time_modes(modes, groups, embeddings, n_slow: int) -> dict[str, tuple[float, str]]:
    """Seconds per mode for all groups: slow modes timed on the first n_slow groups and scaled."""
    seconds = {}
    for name, mode in modes.items():
        n = min(n_slow, len(groups)) if name in SLOW_MODES else len(groups)
        start = time.perf_counter()
        for (_, answers), emb in zip(groups[:n], embeddings[:n]):
            mode(answers, emb)
        seconds[name] = ((time.perf_counter() - start) * len(groups) / n, "" if n == len(groups) else " (scaled)")
    return seconds


def with_reasons(rng, groups):
    """Cost workload: every answer gets a unique justification, so no string repeats."""
    return [
        (truth, [f"{a}, since {x} + {y} = {x + y}" if a.strip() else a for a, (x, y) in
                 zip(answers, rng.integers(0, 10_000, size=(len(answers), 2)))])
        for truth, answers in groups
    ]


def cost_table(args, encoders):
    rng = np.random.default_rng(args.seed + 1)
    short = [make_group(rng, args.cost_answers) for _ in range(args.cost_prompts)]  # what votes see
    long = with_reasons(rng, short)  # what the encoders embed
    full = f"{args.cost_prompts} x {args.cost_answers}"
    print(f"\n### Cost for {full} answers (one process, {time.strftime('%Y-%m-%d')})\n")

    # Embedding: one batched call per encoder; MiniLM on a slice, scaled to the full workload.
    embed_rows, reward_secs = [], {}
    for enc_name, encoder in encoders.items():
        n_prompts = args.cost_prompts if enc_name == "tfidf" else min(args.minilm_cost_prompts, args.cost_prompts)
        scale = args.cost_prompts / n_prompts
        embeddings, secs = embed_groups(encoder, long[:n_prompts])
        n_texts = sum(len(a) for _, a in long[:n_prompts])
        distinct = len({t for _, a in long[:n_prompts] for t in a})
        note = "measured" if scale == 1 else f"scaled x{scale:g} from {n_prompts} prompts"
        embed_rows.append(f"| {enc_name} | {n_texts} ({distinct} distinct) | {secs:.2f} | {secs * scale:.1f} ({note}) |")
        secs = time_modes(EMBEDDING_MODES, long[:n_prompts], embeddings, n_prompts)
        reward_secs[enc_name] = {k: (v * scale, "" if scale == 1 else " (scaled)") for k, (v, _) in secs.items()}

    print("| encoder | answers embedded | seconds | seconds for " + full + " |")
    print("|---|---|---|---|")
    print("\n".join(embed_rows))

    vote_secs = time_modes(STRING_MODES, short, [None] * len(short), args.vote_cost_prompts)
    print(f"\n| mode (reward time only, {full}) | " + " | ".join(f"{e} embeddings (s)" for e in encoders) + " |")
    print("|---|" + "---|" * len(encoders))
    for name, (secs, note) in vote_secs.items():
        print(f"| {name} | " + " | ".join(f"{secs:.2f}{note}" for _ in encoders) + " |")
    for name in EMBEDDING_MODES:
        print(f"| {name} | " + " | ".join("%.2f%s" % reward_secs[e][name] for e in encoders) + " |")
    print("\nVotes work on the short answers and need no embeddings (same number in each column). "
          "Judge times exclude the LLM: they are the prompt building, parsing and aggregation only.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--groups", type=int, default=120, help="groups in the accuracy table")
    p.add_argument("--answers", type=int, default=16, help="answers per group in the accuracy table")
    p.add_argument("--cost-prompts", type=int, default=512)
    p.add_argument("--cost-answers", type=int, default=64)
    p.add_argument("--minilm-cost-prompts", type=int, default=16, help="prompts MiniLM is timed on (then scaled)")
    p.add_argument("--vote-cost-prompts", type=int, default=4, help="prompts math-verify votes are timed on (then scaled)")
    p.add_argument("--encoders", default="tfidf,minilm", help="comma-separated encoders.py names")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    encoders = {name: load_encoder(name) for name in args.encoders.split(",")}
    rng = np.random.default_rng(args.seed)
    groups = [make_group(rng, args.answers) for _ in range(args.groups)]
    print("Example group:", groups[0])
    accuracy_table(groups, encoders)
    cost_table(args, encoders)


if __name__ == "__main__":
    main()
