"""Evaluation: greedy accuracy, avg@k, maj@k and unbiased pass@k, each with a bootstrap 95% interval.

    python eval.py                                         # the embedded tiny-math model
    python eval.py --model runs/<run>/final --k 16         # a model trained by train.py
    python eval.py --model runs/<run>                      # every checkpoint of a run: best and last
    python eval.py --model Qwen/Qwen2.5-Math-1.5B --data math500 --max-tokens 3072 --out eval/base
    python eval.py --model tiny-sounds --data tiny-sounds --answer-format text --open-ended

Per question, k samples at (temperature, top_p) (TTRL's protocol: 16 samples, T=0.6, top_p=0.95),
plus one greedy completion. With c of the n = k samples correct:
    avg@k   = c / n                            (expected accuracy of one sample; = pass@1)
    maj@k   = 1 if the majority-vote answer over the k samples is correct (TTRL's training signal)
    pass@j  = 1 - C(n - c, j) / C(n, j)        (unbiased, Chen et al. 2021), j = 1, 2, 4, ..., k
    greedy  = 1 if the temperature-0 completion is correct
All are averaged over questions. "Correct" uses rewards.grade, the same grader as the rewards; with
--answer-format text (free-text answers) the whole response is the answer, maj@k votes by exact
normalised text, and "correct" is the task's checker (tiny-sounds) or normalised exact match (data.tasks.grader).
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
"""
import argparse
import gc
import json
import math
from pathlib import Path

import numpy as np

from rewards import extract, grade, majority_vote


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
             grader=grade) -> tuple[dict, list[dict]]:
    """Returns (summary: each metric's mean and "ci95": {metric: [lo, hi]}, one record per question).
    open_ended adds BLEU / ROUGE-L (/ embedding similarity with an encoder) of the greedy answers.
    answer_format / grader: how answers are extracted (rewards.extract) and judged (data.tasks.grader)."""
    records = question_records(engine, prompts, truths, k, temperature, top_p, max_tokens, seed, questions,
                               answer_format=answer_format, grader=grader)
    return summarize(records, k, seed, n_boot, open_ended, encoder), records


def question_records(engine, prompts: list[dict], truths: list[str], k: int = 16, temperature: float = 0.6,
                     top_p: float = 0.95, max_tokens: int = 64, seed: int = 0, questions: list[str] | None = None,
                     positions: list[int] | None = None, answer_format: str = "boxed", grader=grade) -> list[dict]:
    """One record per question: samples, answers, verdicts and the per-question metrics. Separate from
    summarize so that several processes can each score a shard of the questions (train.py under
    torchrun; positions = the shard's places in the whole list, see sample.py) and one summarises."""
    greedy = engine.generate(prompts, n=1, temperature=0.0, max_tokens=max_tokens)
    sampled = engine.generate(prompts, n=k, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                              **({} if positions is None else {"positions": positions}))
    ks = pass_ks(k)
    records = []
    for i, (prompt, truth, g, group) in enumerate(zip(prompts, truths, greedy, sampled)):
        answers = [extract(r.text, answer_format) for r in group]
        correct = [grader(a, truth) for a in answers]
        vote = majority_vote(answers, exact=answer_format == "text")
        records.append({
            "question": questions[i] if questions else None, "prompt": prompt["text"], "truth": truth,
            "samples": [r.text for r in group], "answers": answers, "correct": correct, "vote": vote.label,
            "greedy": g[0].text, "greedy_correct": grader(extract(g[0].text, answer_format), truth),
            f"avg@{k}": float(np.mean(correct)), f"maj@{k}": grader(vote.label, truth),
            **{f"pass@{j}": pass_at_k(k, sum(correct), j) for j in ks},
        })
    return records


def pass_ks(k: int) -> list[int]:
    return sorted({2 ** i for i in range(int(math.log2(k)) + 1)} | {k})


def summarize(records: list[dict], k: int, seed: int = 0, n_boot: int = 1000, open_ended: bool = False,
              encoder=None) -> dict:
    """Means over questions and their bootstrap intervals (open_ended also adds its metrics to records)."""
    keys = ["greedy_correct", f"avg@{k}", f"maj@{k}"] + [f"pass@{j}" for j in pass_ks(k)]
    per_q = {key.replace("_correct", ""): np.array([float(r[key]) for r in records]) for key in keys}
    if open_ended:
        preds = [extract(r["greedy"], "boxed") or r["greedy"].strip() for r in records]
        bleu, sim = text_similarity(preds, [r["truth"] for r in records], encoder)
        per_q.update(sim)
        for r, *vals in zip(records, *sim.values()):
            r.update({m: float(v) for m, v in zip(sim, vals)})
    summary = {m: float(v.mean()) for m, v in per_q.items()}
    if open_ended:
        summary["bleu"] = bleu
    summary["n_questions"] = len(records)
    summary["ci95"] = bootstrap_ci(per_q, n_boot, seed)
    return summary


def format_summary(summary: dict) -> str:
    """One line: 'avg@16 0.862 [0.81, 0.91] ...' (metrics with an interval, then the rest)."""
    ci = summary.get("ci95", {})
    return " | ".join(f"{m} {v:.3f}" + (f" [{ci[m][0]:.2f}, {ci[m][1]:.2f}]" if m in ci else "")
                      for m, v in summary.items() if isinstance(v, float))


def model_list(names: list[str]) -> list[str]:
    """Expand run folders (they hold metrics.jsonl) into their checkpoints, oldest first, then final/."""
    out = []
    for name in names:
        p = Path(name)
        if (p / "metrics.jsonl").exists():
            found = sorted(c for c in p.glob("checkpoints/step_*") if c.is_dir() and not c.name.endswith(".tmp"))
            found += [p / "final"] if (p / "final").is_dir() else []
            if not found:
                raise SystemExit(f"--model {name}: a run folder with no checkpoints/step_* and no final/")
            out += [str(c) for c in found]
        else:
            out.append(name)
    return out


def main(argv=None):
    import data.files
    import data.prompts
    import data.tasks
    import sample

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["tiny-math"],
                    help="model folders, hub names or run folders ('tiny-math', 'tiny-digits' = the embedded models)")
    ap.add_argument("--data", default="tiny-math", help=f"{', '.join([*data.tasks.TASKS, *data.files.HUB])}, or a .jsonl/.json/.parquet/.csv file")
    ap.add_argument("--image-key", default=None, help="column holding each row's image(s) (files)")
    ap.add_argument("--audio-key", default=None, help="column holding each row's audio clip(s) (files): WAV paths or stored audio")
    ap.add_argument("--answer-format", default=None, choices=["boxed", "text"], help="boxed: \\boxed{} answers (math); text: the whole "
                    "response is a free-text answer (default: text for tiny-sounds, else boxed)")
    ap.add_argument("--question-key", default="question", help="column holding the question (files)")
    ap.add_argument("--answer-key", default="answer", help="column holding the reference answer (files)")
    ap.add_argument("--prompt-template", default=None, help="a .txt prompt or .json chat messages with {question} (see data/prompts.py)")
    ap.add_argument("--open-ended", action="store_true", help="also BLEU, ROUGE-L and embedding similarity of the greedy answers")
    ap.add_argument("--encoder", default="minilm", help="--open-ended: sentence encoder for embed_sim (see encoders.py)")
    ap.add_argument("--k", type=int, default=16, help="samples per question for avg@k / maj@k / pass@k")
    ap.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (TTRL: 0.6)")
    ap.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling top-p (TTRL: 0.95)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max completion tokens per sample (TTRL: 3072)")
    ap.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    ap.add_argument("--out", default=None, help="folder for report.json and the per-question JSONL files")
    ap.add_argument("--engine", default="auto", choices=["auto", "vllm", "hf"], help="rollout engine (auto = vllm if installed)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model dtype")
    ap.add_argument("--vllm-kv-gib", type=float, default=1.0, help="vllm on CPU: KV-cache size in GiB")
    ap.add_argument("--vllm-gpu-memory", type=float, default=0.85, help="vllm on GPU: fraction of GPU memory for the engine")
    args = ap.parse_args(argv)

    models = model_list(args.model)
    rows = data.files.load_rows(args.data, args.question_key, args.answer_key, data.files.media_columns(args.image_key, args.audio_key))
    args.answer_format = data.tasks.answer_format(args.data, args.answer_format)
    grader = data.tasks.grader(args.data, args.answer_format)
    template = data.prompts.load_template(args.prompt_template)
    encoder = None
    if args.open_ended:
        from encoders import load_encoder
        encoder = load_encoder(args.encoder)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, name in enumerate(models):
        path = data.tasks.resolve_model(name)
        model, tok = sample.load_policy(path, args.dtype)
        processor = sample.load_processor(model)
        prompts = data.prompts.make_prompts(rows, tok, path, name, template, processor, args.answer_format)
        engine = sample.make_engine(args.engine, model, tok, path, args.dtype, processor=processor, seed=args.seed,
                                    kv_cache_gib=args.vllm_kv_gib, gpu_memory_utilization=args.vllm_gpu_memory)
        print(f"[{i + 1}/{len(models)}] model {path} | engine {engine.name} | {len(rows)} questions")
        summary, records = evaluate(engine, prompts, [r["answer"] for r in rows], args.k, args.temperature,
                                    args.top_p, args.max_tokens, args.seed, [r["question"] for r in rows],
                                    open_ended=args.open_ended, encoder=encoder, answer_format=args.answer_format,
                                    grader=grader)
        print(format_summary(summary))
        results.append({"model": path, **summary})
        if out:
            tag = f"{i:02d}_{Path(path).name}" if len(models) > 1 else Path(path).name
            with open(out / f"{tag}_questions.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        del engine, model, processor
        gc.collect()  # one engine at a time: free this one's KV cache before the next model loads

    key = f"avg@{args.k}"
    best = max(results, key=lambda r: r[key])
    report = {"args": vars(args), "models": results, "last": results[-1]["model"], "best": best["model"],
              "best_selected_by": key}
    if len(results) > 1:
        print(f"\n{'model':<40}{'greedy':>8}{key:>9}{f'maj@{args.k}':>9}")
        for r in results:
            mark = " <- best" if r is best else ""
            print(f"{r['model'][-40:]:<40}{r['greedy']:>8.3f}{r[key]:>9.3f}{r[f'maj@{args.k}']:>9.3f}{mark}")
        print(f"last: {report['last']} | best by {key} (selected on this test set, optimistic): {report['best']}")
    if out:
        (out / "report.json").write_text(json.dumps(report, indent=1))
        print(f"report: {out / 'report.json'}")
    return report


if __name__ == "__main__":
    main()
