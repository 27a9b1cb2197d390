"""Evaluation: greedy accuracy, avg@k, maj@k and unbiased pass@k of a model on a test set.

    python eval.py                                         # the embedded tiny-math model
    python eval.py --model runs/<run>/final --k 16         # a model trained by train.py
    python eval.py --model Qwen/Qwen2.5-Math-1.5B --data math500.jsonl --max-tokens 3072

Per question, k samples at (temperature, top_p) (TTRL's protocol: 16 samples, T=0.6, top_p=0.95),
plus one greedy completion. With c of the k samples correct:
    avg@k   = c / k                            (expected accuracy of one sample)
    maj@k   = 1 if the majority-vote answer over the k samples is correct (TTRL's training signal)
    pass@k  = 1 - C(n - c, k) / C(n, k)        (unbiased estimator from n >= k samples; Chen et al. 2021)
    greedy  = 1 if the temperature-0 completion is correct
All are averaged over questions. "Correct" uses rewards.grade, the same grader as the rewards.
Writes a JSON report and, with --out, a per-question JSONL to inspect.
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from rewards import extract_answer, grade, majority_vote


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n with c correct, is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def evaluate(engine, prompts: list[dict], truths: list[str], k: int = 16, temperature: float = 0.6,
             top_p: float = 0.95, max_tokens: int = 64, seed: int = 0) -> tuple[dict, list[dict]]:
    """Returns (summary metrics, one record per question)."""
    greedy = engine.generate(prompts, n=1, temperature=0.0, max_tokens=max_tokens)
    sampled = engine.generate(prompts, n=k, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    records = []
    for prompt, truth, g, group in zip(prompts, truths, greedy, sampled):
        answers = [extract_answer(r.text) for r in group]
        correct = [grade(a, truth) for a in answers]
        vote = majority_vote(answers)
        records.append({
            "prompt": prompt["text"], "truth": truth, "samples": [r.text for r in group], "answers": answers,
            "vote": vote.label, "greedy": g[0].text,
            "greedy_correct": grade(extract_answer(g[0].text), truth), f"avg@{k}": float(np.mean(correct)),
            f"maj@{k}": grade(vote.label, truth), f"pass@{k}": pass_at_k(k, sum(correct), k),
        })
    keys = ["greedy_correct", f"avg@{k}", f"maj@{k}", f"pass@{k}"]
    summary = {key.replace("_correct", ""): float(np.mean([r[key] for r in records])) for key in keys}
    summary["n_questions"] = len(records)
    return summary, records


def main():
    import data
    import sample
    import tinymath

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-math", help="model folder or hub name ('tiny-math' = the embedded model)")
    ap.add_argument("--data", default="tiny-math", help="'tiny-math' or a .jsonl/.json file with questions and answers")
    ap.add_argument("--question-key", default="question", help="field holding the question in --data")
    ap.add_argument("--answer-key", default="answer", help="field holding the reference answer in --data")
    ap.add_argument("--k", type=int, default=16, help="samples per question for avg@k / maj@k / pass@k")
    ap.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (TTRL: 0.6)")
    ap.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling top-p (TTRL: 0.95)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max completion tokens per sample")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--out", default=None, help="folder for report.json and per_question.jsonl")
    ap.add_argument("--engine", default="auto", choices=["auto", "vllm", "hf"], help="rollout engine (auto = vllm if installed)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model dtype")
    args = ap.parse_args()

    path = str(tinymath.get_model()) if args.model == "tiny-math" else args.model
    rows = data.load_rows(args.data, args.question_key, args.answer_key)
    model, tok = sample.load_policy(path, args.dtype)
    engine = sample.make_engine(args.engine, model, tok, path, args.dtype, seed=args.seed)
    print(f"model {path} | engine {engine.name} | {len(rows)} questions")
    prompts = [data.make_prompt(r["question"], tok, data.is_tiny_math(path)) for r in rows]
    summary, records = evaluate(engine, prompts, [r["answer"] for r in rows], args.k,
                                args.temperature, args.top_p, args.max_tokens, args.seed)
    print(json.dumps({"model": path, "engine": engine.name, **summary}, indent=1))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"model": path, "args": vars(args), **summary}, indent=1))
        with open(out / "per_question.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


if __name__ == "__main__":
    main()
