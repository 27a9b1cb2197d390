"""Evaluation: greedy accuracy, avg@k, maj@k and unbiased pass@k, each with a bootstrap 95% interval.

    python eval.py                                         # the embedded tiny-math model
    python eval.py --model runs/<run>/final --k 16         # a model trained by train.py
    python eval.py --model runs/<run>                      # every checkpoint of a run: best and last
    python eval.py --model Qwen/Qwen2.5-Math-1.5B --data math500 --max-tokens 3072 --out eval/base
    python eval.py --model tiny-sounds --data tiny-sounds --answer-format text --open-ended
    python eval.py --model runs/<run> --data prompts.jsonl --win-rate --judge-model J   # no answers needed

Per question, k samples at (temperature, top_p) (TTRL's protocol: 16 samples, T=0.6, top_p=0.95),
plus one greedy completion. With c of the n = k samples correct:
    avg@k   = c / n                            (expected accuracy of one sample; = pass@1)
    maj@k   = 1 if the majority-vote answer over the k samples is correct (TTRL's training signal)
    pass@j  = 1 - C(n - c, j) / C(n, j)        (unbiased, Chen et al. 2021), j = 1, 2, 4, ..., k
    greedy  = 1 if the temperature-0 completion is correct
All are averaged over the questions that have a true answer (none: they are absent). Label-free,
over every question: majority_ratio (share of the k samples in the vote: the model's agreement with
itself), distinct_answers, answer_entropy, response_len (tokens), truncated (share); a trained run's
eval_after.json adds votes_changed. "Correct" uses answers.grade, the same checker as the rewards; with
--answer-format text (free-text answers) the whole response is the answer, maj@k votes by exact
normalised text, and "correct" is the task's checker (tiny-sounds) or normalised exact match (data.tasks.checker).
Open-ended answers (--open-ended; OP-TTRAV's auxiliary evaluation), on the greedy answer (the
\\boxed{} content, else the whole completion) against the reference:
    bleu        corpus BLEU, sacrebleu (0-100, corpus-level: no interval; answers shorter than 4 words
                have no 4-grams, so one-word answers score 0 by construction)
    rougeL      mean ROUGE-L F1, rouge-score (longest common subsequence of words)
    embed_sim   mean cosine similarity of the two answers' sentence embeddings (--encoder, encoders.py)
They sit beside accuracy: where a checker exists (grade) it stays the headline; these say how close
the wording is where exact match is too strict.
95% interval: percentile bootstrap over questions (resample the questions with replacement 1000
times, recompute every metric on the same resamples, take the 2.5% and 97.5% quantiles). It
measures how much the score depends on which questions were drawn, not sampling noise of the model
alone; with 30 AIME questions it is wide, and that is the honest answer.

Several models (or a run folder: its checkpoints/step_* and final/): each is evaluated with the
same seed; the report names the last one and the best one by avg@k. Picking the best on the test
set itself is optimistic; report both, as the TTRL table does not say which it used.
--out writes report.json and one <model>_questions.jsonl per model (question, prompt, samples,
extracted answers, vote, truth, per-sample verdicts).

--win-rate (no answers needed; docs/unlabeled.md): each model's greedy answers against --baseline's,
judged by --judge-model in both orders (A/B swapped); win = 1, tie = 0.5, loss = 0, unparseable
replies counted and left out; the win rate, the length-controlled win rate (a logistic regression on
the length difference, read at difference 0) and a bootstrap interval for both.
"""
import argparse
import gc
import json
import math
import re
from pathlib import Path

import numpy as np

from answers import answer_entropy, extract, grade, is_equivalent, majority_vote


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n with c correct, is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def bootstrap_ci(values: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% interval of each metric's mean over questions. values[m]: (Q,) per-question scores.
    All metrics share the resampled question sets, so their intervals are comparable."""
    q = len(next(iter(values.values())))
    idx = np.random.default_rng(seed).integers(0, q, size=(n_boot, q))  # (n_boot, Q) resampled questions
    return {m: [float(x) for x in np.percentile(np.asarray(v, float)[idx].mean(1), [2.5, 97.5])]
            for m, v in values.items()}


def text_similarity(preds: list[str], refs: list[str], encoder=None) -> tuple[float, dict[str, np.ndarray]]:
    """Open-ended metrics (module docstring). Returns (corpus BLEU, per-pair {"rougeL", "embed_sim"})."""
    import sacrebleu
    from rouge_score import rouge_scorer

    bleu = sacrebleu.corpus_bleu(preds, [refs]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    per = {"rougeL": np.array([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)])}
    if encoder is not None:
        e = encoder.encode(preds + refs)  # (2n, D) unit rows
        per["embed_sim"] = (e[:len(preds)] * e[len(preds):]).sum(1).clip(-1, 1)
    return float(bleu), per


def evaluate(engine, prompts: list[dict], truths: list[str], k: int = 16, temperature: float = 0.6,
             top_p: float = 0.95, max_tokens: int = 64, seed: int = 0, questions: list[str] | None = None,
             n_boot: int = 1000, open_ended: bool = False, encoder=None, answer_format: str = "boxed",
             checker=grade) -> tuple[dict, list[dict]]:
    """Returns (summary: each metric's mean and "ci95": {metric: [lo, hi]}, one record per question).
    open_ended adds BLEU / ROUGE-L (/ embedding similarity with an encoder) of the greedy answers.
    answer_format / checker: how answers are extracted (answers.extract) and judged (data.tasks.checker)."""
    records = question_records(engine, prompts, truths, k, temperature, top_p, max_tokens, seed, questions,
                               answer_format=answer_format, checker=checker)
    return summarize(records, k, seed, n_boot, open_ended, encoder), records


def question_records(engine, prompts: list[dict], truths: list[str | None], k: int = 16, temperature: float = 0.6,
                     top_p: float = 0.95, max_tokens: int = 64, seed: int = 0, questions: list[str] | None = None,
                     positions: list[int] | None = None, answer_format: str = "boxed", checker=grade) -> list[dict]:
    """One record per question: samples, answers, the vote, the label-free metrics and, where the
    question has a truth (not None), the verdicts and the truth-based metrics. Separate from summarize
    so that several processes can each score a shard of the questions (train.py under torchrun;
    positions = the shard's places in the whole list, see sample.py) and one summarises."""
    greedy = engine.generate(prompts, n=1, temperature=0.0, max_tokens=max_tokens)
    sampled = engine.generate(prompts, n=k, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                              **({} if positions is None else {"positions": positions}))
    records = []
    for i, (prompt, truth, g, group) in enumerate(zip(prompts, truths, greedy, sampled)):
        answers = [extract(r.text, answer_format) for r in group]
        vote = majority_vote(answers, exact=answer_format == "text")
        record = {
            "question": questions[i] if questions else None, "prompt": prompt["text"], "truth": truth,
            "samples": [r.text for r in group], "answers": answers, "vote": vote.label, "greedy": g[0].text,
            # label-free: how much the samples agree with their own vote, and how they end
            "majority_ratio": vote.majority_ratio, "distinct_answers": vote.n_distinct,
            "answer_entropy": answer_entropy(vote), "response_len": float(np.mean([len(r.ids) for r in group])),
            "truncated": float(np.mean([r.truncated for r in group])),
        }
        if truth is not None:
            correct = [checker(a, truth) for a in answers]
            record.update({"correct": correct, "greedy_correct": checker(extract(g[0].text, answer_format), truth),
                           f"avg@{k}": float(np.mean(correct)), f"maj@{k}": checker(vote.label, truth),
                           **{f"pass@{j}": pass_at_k(k, sum(correct), j) for j in pass_ks(k)}})
        records.append(record)
    return records


def pass_ks(k: int) -> list[int]:
    return sorted({2 ** i for i in range(int(math.log2(k)) + 1)} | {k})


LABEL_FREE = ["majority_ratio", "distinct_answers", "answer_entropy", "response_len", "truncated"]


def summarize(records: list[dict], k: int, seed: int = 0, n_boot: int = 1000, open_ended: bool = False,
              encoder=None) -> dict:
    """Means over questions and their bootstrap intervals: the truth-based metrics over the questions
    that have a truth (absent when none has), the label-free ones over all (open_ended also adds its
    metrics to the records)."""
    labelled = [r for r in records if r["truth"] is not None]
    per_q = {}
    if labelled:
        keys = ["greedy_correct", f"avg@{k}", f"maj@{k}"] + [f"pass@{j}" for j in pass_ks(k)]
        per_q = {key.replace("_correct", ""): np.array([float(r[key]) for r in labelled]) for key in keys}
    if open_ended and labelled:
        preds = [extract(r["greedy"], "boxed") or r["greedy"].strip() for r in labelled]
        bleu, sim = text_similarity(preds, [r["truth"] for r in labelled], encoder)
        per_q.update(sim)
        for r, *vals in zip(labelled, *sim.values()):
            r.update({m: float(v) for m, v in zip(sim, vals)})
    free = {key: np.array([float(r[key]) for r in records]) for key in LABEL_FREE}
    summary = {m: float(v.mean()) for m, v in {**per_q, **free}.items()}
    if open_ended and labelled:
        summary["bleu"] = bleu
    summary["n_questions"] = len(records)
    summary["n_labelled"] = len(labelled)
    summary["ci95"] = {**(bootstrap_ci(per_q, n_boot, seed) if per_q else {}), **bootstrap_ci(free, n_boot, seed)}
    return summary


def votes_changed(before: list[dict], after: list[dict], answer_format: str = "boxed") -> int:
    """How many questions' majority answer differs after training (equal answers by the grader's rule:
    math-equal for boxed answers, equal normalised text for free text). Label-free."""
    same = (lambda a, b: a == b) if answer_format == "text" else (
        lambda a, b: a == b or (a is not None and b is not None and is_equivalent(a, b)))
    return sum(not same(b["vote"], a["vote"]) for b, a in zip(before, after))


def format_summary(summary: dict) -> str:
    """One line: 'avg@16 0.862 [0.81, 0.91] ...' (metrics with an interval, then the rest)."""
    ci = summary.get("ci95", {})
    line = " | ".join(f"{m} {v:.3f}" + (f" [{ci[m][0]:.2f}, {ci[m][1]:.2f}]" if m in ci else "")
                      for m, v in summary.items() if isinstance(v, float))
    labelled, total = summary.get("n_labelled"), summary.get("n_questions")
    if labelled is not None and 0 < labelled < total:
        line += f" | accuracy on the {labelled} of {total} questions with an answer"
    return line


def summary_metrics(summary: dict) -> dict:
    """A summary's metrics: its numbers, less the bookkeeping (counts of questions, seconds, a curve's step)."""
    return {m: v for m, v in summary.items() if isinstance(v, (int, float)) and m not in ("n_questions", "n_labelled", "seconds", "step")}


def summary_table(columns: dict[str, dict]) -> list[list[str]]:
    """Evaluations side by side (column name -> summarize's dict; {} = not evaluated): a header row, then
    one row per metric, each cell 'value [low, high]' with its 95% interval, '' where a column lacks it.
    The model card, the trackers and monitor.py --compare print it (markdown_table)."""
    def cell(summary: dict, m: str) -> str:
        if m not in summary:
            return ""
        v, ci = summary[m], summary.get("ci95", {}).get(m)
        return (f"{v:.3f}" if isinstance(v, float) else str(v)) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    metrics = dict.fromkeys(m for s in columns.values() for m in summary_metrics(s))
    return [["metric", *columns]] + [[m, *(cell(s, m) for s in columns.values())] for m in metrics]


def markdown_table(rows: list[list]) -> str:
    """rows[0] is the header."""
    return "\n".join("| " + " | ".join(map(str, r)) + " |" for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]])


# --- pairwise win rate (AlpacaEval-style): is a model's answer preferred to a baseline's? ---------

PAIRWISE_TEMPLATE = (
    "Two responses to the same instruction.\n"
    "Instruction: {question}\n\n"
    "Response A:\n{a}\n\n"
    "Response B:\n{b}\n\n"
    "Which response follows the instruction better? Reply with A, B, or tie, and nothing else.\n"
    "Better:"
)
_TIE_WORDS = {"tie", "equal", "both", "neither", "same"}


def parse_preference(reply) -> str | None:
    """A judge's reply -> "A", "B", "tie", or None (unparseable): its first word, punctuation dropped,
    lower case ("A", "b.", "Response B", "**A**" count; "tie", "equal", "both", "neither", "same" are ties)."""
    words = re.sub(r"[^\w\s]", " ", reply if isinstance(reply, str) else "").lower().split()
    if words[:1] in (["response"], ["answer"]):
        words = words[1:]
    if not words:
        return None
    if words[0] == "a" and words[1:2] and words[1] in _TIE_WORDS:  # "a tie"
        return "tie"
    if words[0] in ("a", "b"):
        return words[0].upper()
    return "tie" if words[0] in _TIE_WORDS else None


def pairwise_judgements(questions: list[str], candidate: list[str], baseline: list[str], judge) -> list[dict]:
    """Every question judged twice, the candidate as response A and then as B (the orders cancel the
    judge's position bias); judge: prompts -> replies. Per question: the candidate's preference in each
    order (1 win, 0.5 tie, 0 loss; None unparseable) and the length difference (characters)."""
    fill = lambda q, a, b: PAIRWISE_TEMPLATE.format(question=q, a=a, b=b)  # noqa: E731
    replies = judge([fill(q, c, b) for q, c, b in zip(questions, candidate, baseline)] +
                    [fill(q, b, c) for q, c, b in zip(questions, candidate, baseline)])
    n, score = len(questions), {"tie": 0.5}
    first = [{"A": 1.0, "B": 0.0, **score}.get(parse_preference(r)) for r in replies[:n]]  # candidate was A
    second = [{"A": 0.0, "B": 1.0, **score}.get(parse_preference(r)) for r in replies[n:]]  # candidate was B
    return [{"prefs": [p1, p2], "len_diff": len(c) - len(b), "replies": [r1, r2]}
            for p1, p2, c, b, r1, r2 in zip(first, second, candidate, baseline, replies[:n], replies[n:])]


def length_controlled(prefs: np.ndarray, len_diff: np.ndarray) -> float:
    """AlpacaEval 2.0's idea in its simplest form: a logistic regression of each judgement's preference
    (a win is 1, a loss 0, a tie half of each) on the length difference, divided by its standard
    deviation; the win rate it predicts at difference 0. Equals the plain win rate when no length differs."""
    from sklearn.linear_model import LogisticRegression

    x = len_diff / (len_diff.std() or 1.0)
    X, y = np.concatenate([x, x])[:, None], np.r_[np.ones(len(x)), np.zeros(len(x))]
    w = np.r_[prefs, 1.0 - prefs]
    if w[y == 1].sum() == 0 or w[y == 0].sum() == 0:  # all losses or all wins: nothing to regress
        return float(prefs.mean())
    fit = LogisticRegression(C=1e6, tol=1e-10, max_iter=1000).fit(X[w > 0], y[w > 0], sample_weight=w[w > 0])
    return float(1.0 / (1.0 + np.exp(-fit.intercept_[0])))


def win_rates(judgements: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """The win rate (mean preference over the parsed judgements) and the length-controlled one, each
    with a percentile-bootstrap 95% interval over questions; unparseable replies are counted and left
    out (a question keeps its other order's judgement)."""
    prefs = [[(p, j["len_diff"]) for p in j["prefs"] if p is not None] for j in judgements]
    flat = [pair for q in prefs for pair in q]
    out = {"n_questions": len(judgements), "judgements": 2 * len(judgements),
           "unparseable": sum(p is None for j in judgements for p in j["prefs"]),
           "ties": sum(p == 0.5 for j in judgements for p in j["prefs"])}
    if not flat:
        return out  # no judgement could be read: no win rate, and the count above says why

    def both(groups) -> tuple[float, float]:
        pairs = np.array([pair for q in groups for pair in q], dtype=float)
        return float(pairs[:, 0].mean()), length_controlled(pairs[:, 0], pairs[:, 1])
    out["win_rate"], out["lc_win_rate"] = both(prefs)
    judged = [q for q in prefs if q]  # the questions with a parsed judgement: the only ones the rates read
    rng = np.random.default_rng(seed)
    draws = np.array([both([judged[i] for i in rng.integers(0, len(judged), len(judged))]) for _ in range(n_boot)])
    out["ci95"] = {m: [float(v) for v in np.percentile(draws[:, c], [2.5, 97.5])] for c, m in enumerate(["win_rate", "lc_win_rate"])}
    return out


def format_win_rates(stats: dict) -> str:
    ci = stats.get("ci95", {})
    rates = " | ".join(f"{m} {stats[m]:.3f} [{ci[m][0]:.2f}, {ci[m][1]:.2f}]" for m in ("win_rate", "lc_win_rate") if m in stats)
    return (rates or "no judgement could be read") + (f" | {stats['unparseable']} of {stats['judgements']} judge replies "
                                                       f"unparseable, {stats['ties']} ties")


def run_start_model(names: list[str]) -> str | None:
    """The model a run folder started from (its config.json), for the first run folder among names."""
    for name in names:
        config = Path(name) / "config.json"
        if (Path(name) / "metrics.jsonl").exists() and config.exists():
            return json.loads(config.read_text())["model"]
    return None


def judge_replies(args):
    """--judge-model (default: the baseline) as a callable prompts -> greedy replies, each prompt in the
    judge's chat template when it has one."""
    import data.tasks
    import sample

    path = data.tasks.resolve_model(args.judge_model or args.baseline)
    model, tok = sample.load_policy(path, args.dtype, args.device)
    engine = sample.make_engine(args.engine, model, tok, path, args.dtype, args.gen_batch, seed=args.seed, kv_cache_gib=args.vllm_kv_gib,
                                gpu_memory_utilization=args.vllm_gpu_memory)
    reply = sample.greedy_replies(engine, args.judge_max_tokens, sample.context_length(model))
    if not tok.chat_template:
        return reply
    chat = lambda p: tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)  # noqa: E731
    return lambda prompts: reply([chat(p) for p in prompts])


def model_list(names: list[str]) -> list[str]:
    """Expand run folders (they hold metrics.jsonl) into their checkpoints, oldest first, then final/
    (the last step's checkpoint, which holds final/'s weights, is evaluated once: as final/)."""
    import data.tasks

    out = []
    for name in names:
        p = Path(name)
        if (p / "metrics.jsonl").exists():
            found = sorted(c for c in p.glob("checkpoints/step_*") if c.is_dir() and "." not in c.name)  # no *.tmp, *.damaged
            if (p / "final").is_dir():
                found = [c for c in found if c.name != f"step_{last_step(p):06d}"] + [p / "final"]
            if not found:
                raise SystemExit(f"--model {name}: a run folder with no checkpoints/step_* and no final/")
            out += [str(c) for c in found]
        else:
            data.tasks.check_path(name)  # a missing local folder: one line before anything loads
            out.append(name)
    return out


def last_step(run: Path) -> int:
    """The last step in a run's metrics.jsonl (-1 when it has none)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    try:
        return json.loads(lines[-1])["step"] if lines else -1
    except (ValueError, KeyError, TypeError):  # a line cut short: no step to match
        return -1


def check_sampling(args, ap) -> None:
    """The sampling flags in the ranges both engines accept (train.py's rules for its evaluation flags,
    config.RANGES), one line each, before anything loads."""
    from config import POSITIVE, RANGES, check_flag

    check_flag(ap, "temperature", args.temperature, RANGES["eval_temperature"])
    check_flag(ap, "top_p", args.top_p, RANGES["eval_top_p"])
    for name in ("k", "max_tokens", "judge_max_tokens"):
        check_flag(ap, name, getattr(args, name), POSITIVE)
    for name in ("video_frames", "video_size"):
        check_flag(ap, name, getattr(args, name))


def parse_args(argv=None):
    """eval.py's flags: its own (several models, the report, the win rate) and train.py's shared
    definitions (config.py: data, sampling, engine), each checked before anything loads."""
    from config import OneLineParser, add_data_flags, add_engine_flags, add_helper_flags, add_sampling_flags, resolve_device

    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--model", nargs="+", default=["tiny-math"], help="model folders, hub names or run folders ('tiny-math', 'tiny-digits', "
      "'tiny-sounds', 'tiny-clips' = the embedded models): several are evaluated one after the other")
    add_data_flags(a)  # train.py's flags, the same definitions (config.py)
    add_sampling_flags(a, eval_prefix="")  # --k, --temperature, --top-p: train.py's --eval-k, --eval-temperature, --eval-top-p
    add_engine_flags(a)
    add_helper_flags(a)
    ap.set_defaults(vllm_gpu_memory=0.85)  # the engine has the GPU to itself: no trainer beside it
    a("--out", default=None, help="folder for report.json and the per-question JSONL files")
    a("--open-ended", action="store_true", help="also BLEU, ROUGE-L and embedding similarity (--encoder) of the greedy answers")
    a("--win-rate", action="store_true", help="also compare each model's greedy answers with --baseline's, judged "
      "pairwise by --judge-model in both orders: win rate and length-controlled win rate (no answers needed)")
    a("--baseline", default=None, help="--win-rate: the model compared with (default: a run folder's start model)")
    a("--judge-model", default=None, help="--win-rate: the model that judges (default: the baseline itself, a weak judge)")
    args = ap.parse_args(argv)
    check_sampling(args, ap)
    resolve_device(args)
    return args


def main(argv=None):
    import data.files
    import data.prompts
    import data.tasks
    import sample

    args = parse_args(argv)
    models = model_list(args.model)
    from_runs = set(models) - set(args.model)  # checkpoints and final/ listed from run folders
    if args.win_rate:
        args.baseline = args.baseline or run_start_model(args.model)
        if args.baseline is None:
            raise SystemExit("--win-rate: name the model to compare with, --baseline MODEL (a run folder's start model is the "
                             "default when --model is one)")
        models = [args.baseline] + [m for m in models if m != args.baseline]
    rows = data.files.rows_for(args, models[0])
    args.answer_format = data.tasks.answer_format(args.data, args.answer_format)
    checker = data.tasks.checker(args.data, args.answer_format)
    template = data.prompts.load_template(args.prompt_template)
    encoder = None
    if args.open_ended:
        from encoders import load_encoder
        encoder = load_encoder(args.encoder)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results, greedy_answers, kept = [], [], None  # kept: the questions that fit the models' context
    for i, name in enumerate(models):
        if name in from_runs and not Path(name).is_dir():  # listed from a run folder, since rotated away by the run
            print(f"[{i + 1}/{len(models)}] {name}: gone since the run folder was read (the run keeps its newest "
                  f"--keep-checkpoints); skipped")
            continue
        path = data.tasks.resolve_model(name)
        model, tok = sample.load_policy(path, args.dtype, args.device)
        processor = sample.load_processor(model)
        prompts = data.prompts.make_prompts(rows, tok, path, name, template, processor, args.answer_format)
        fit, prompts = sample.drop_too_long(rows, prompts, tok, processor, sample.context_length(model), args)  # as train.py
        if kept is None:
            data.prompts.report_lost_characters(rows, tok, path, name)
        elif fit != kept:  # every model answers the same questions, or the numbers do not compare
            raise SystemExit(f"--model {name}: {len(fit)} of the {len(rows)} questions fit its context, {len(kept)} fit the "
                             f"models' before it: evaluate it on its own, or lower --max-tokens so that all fit")
        kept = fit
        engine = sample.make_engine(args.engine, model, tok, path, args.dtype, args.gen_batch, processor=processor, seed=args.seed,
                                    kv_cache_gib=args.vllm_kv_gib, gpu_memory_utilization=args.vllm_gpu_memory)
        print(f"[{i + 1}/{len(models)}] model {path} | engine {engine.name} | {len(kept)} questions")
        summary, records = evaluate(engine, prompts, [r["answer"] for r in kept], args.k, args.temperature,
                                    args.top_p, args.max_tokens, args.seed, [r["question"] for r in kept],
                                    open_ended=args.open_ended, encoder=encoder, answer_format=args.answer_format,
                                    checker=checker)
        print(format_summary(summary))
        results.append({"model": path, **summary})
        greedy_answers.append([r["greedy"] for r in records])
        if out:
            tag = f"{i:02d}_{Path(path).name}" if len(models) > 1 else Path(path).name
            with open(out / f"{tag}_questions.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        del engine, model, processor
        gc.collect()  # one engine at a time: free this one's KV cache before the next model loads

    if args.win_rate:
        judge = judge_replies(args)
        for i, result in enumerate(results[1:], 1):
            judgements = pairwise_judgements([r["question"] for r in kept], greedy_answers[i], greedy_answers[0], judge)
            result["vs_baseline"] = {"baseline": results[0]["model"], **win_rates(judgements, seed=args.seed)}
            print(f"{result['model']} vs {results[0]['model']}: {format_win_rates(result['vs_baseline'])}")
            if out:
                with open(out / f"{i:02d}_{Path(result['model']).name}_pairwise.jsonl", "w") as f:
                    f.writelines(json.dumps({"question": r["question"], **j}) + "\n" for r, j in zip(kept, judgements))
    if not results:
        raise SystemExit(f"--model {' '.join(args.model)}: no model left to evaluate")
    key = f"avg@{args.k}"
    report = {"args": vars(args), "models": results, "last": results[-1]["model"]}
    if all(key in r for r in results):  # the best needs true answers
        best = max(results, key=lambda r: r[key])
        report.update(best=best["model"], best_selected_by=key)
    if len(results) > 1 and "best" in report:
        print(f"\n{'model':<40}{'greedy':>8}{key:>9}{f'maj@{args.k}':>9}")
        for r in results:
            mark = " <- best" if r is best else ""
            print(f"{r['model'][-40:]:<40}{r['greedy']:>8.3f}{r[key]:>9.3f}{r[f'maj@{args.k}']:>9.3f}{mark}")
        print(f"last: {report['last']} | best by {key} (selected on this test set, optimistic): {report['best']}")
    elif len(results) > 1:
        print("no true answers: no accuracy and no best checkpoint; the label-free metrics are above"
              + (", the win rates against the baseline too" if args.win_rate else ""))
    if out:
        (out / "report.json").write_text(json.dumps(report, indent=1))
        print(f"report: {out / 'report.json'}")
    return report


if __name__ == "__main__":
    main()
