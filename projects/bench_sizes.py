"""Rollout speed at model sizes that matter: the hf engine (transformers generate) vs vLLM, from 0.3M
to 100M+ parameters, and how far each is from this machine's matmul peak.

    python projects/bench_sizes.py                       # about 15 minutes on 2 CPU cores
    python projects/bench_sizes.py --sizes 25M --ns 16    # one size, one n

The models are Qwen2 architectures built from a config with random weights (nothing downloaded):
a 32,000-token vocabulary (a character tokenizer padded with filler tokens, data/build.py) and

    size   hidden  layers  heads (kv)  MLP
    tiny   96      3       3 (1)       256     the embedded tiny-math's shape (0.3M), with the big vocabulary: 3.4M
    25M    512     8       8 (2)       1536
    100M   768     12      12 (4)      2048

Every completion runs to --max-tokens (end-of-sequence is never sampled), so both engines generate
the same number of tokens. Each (engine, size) runs in a fresh process, as train.py does (vLLM pins
its process's threads when it starts); the runs alternate hf, vllm, hf, vllm, ... and the table
gives the median and range over --repeats rounds, so a noisy shared machine cannot fake a ratio.
Achieved FLOP/s counts 2 FLOPs per weight per generated token plus attention over the context
(4 x layers x hidden x context), divided by the measured peak of a float32 matmul on this machine.
"""
import argparse
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

SIZES = {"tiny": dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=1, intermediate_size=256),
         "25M": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2, intermediate_size=1536),
         "100M": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4, intermediate_size=2048)}
VOCAB = 32_000


def build(folder: Path, size: str) -> Path:
    """A random Qwen2 model of `size` with a 32k vocabulary, saved in HF format (both engines load it)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from data.build import make_tokenizer
    if (folder / "config.json").exists():
        return folder
    chars = [chr(c) for c in range(32, 127)]  # printable ASCII: the prompts' characters
    tok = make_tokenizer(["<pad>", "<eos>"], chars + [f"<f{i}>" for i in range(VOCAB - 2 - len(chars))])
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=0,
                         eos_token_id=1, bos_token_id=1, **SIZES[size])
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of the best of `repeats` n x n matmuls (after one warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def worker(engine_name: str, folder: str, ns: list[int], prompts: int, max_tokens: int) -> dict:
    """In a fresh process: start the engine, warm it up, time one generate call per n."""
    from data import tinymath
    from sample import HFEngine, VLLMEngine, load_policy, stop_token_ids

    t = time.perf_counter()
    model, tok = load_policy(folder)
    if engine_name == "hf":
        engine = HFEngine(model, tok)
        engine.suppress = stop_token_ids(tok)  # never end early: every completion is max_tokens long
    else:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        engine = VLLMEngine(folder, tok, "float32", kv_cache_gib=2.0)
        engine.bias = {i: -100.0 for i in stop_token_ids(tok)}
    start = time.perf_counter() - t
    batch = [{"text": tinymath.prompt_text(r["question"])} for r in tinymath.test_split()[:prompts]]
    engine.generate(batch, 2, 1.0, max_tokens=8, seed=0)  # warm-up: first-call allocations
    out = {"start_s": start, "params": sum(p.numel() for p in model.parameters())}
    for n in ns:
        t = time.perf_counter()
        groups = engine.generate(batch, n, 1.0, max_tokens=max_tokens, seed=1)
        seconds = time.perf_counter() - t
        tokens = [len(r.ids) for g in groups for r in g]
        context = statistics.mean(len(r.prompt_ids) + len(r.ids) / 2 for g in groups for r in g)
        out[n] = {"tok_s": sum(tokens) / seconds, "tokens": sum(tokens), "min_len": min(tokens), "context": context}
    return out


def run_worker(engine: str, folder: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, str(folder), "--ns", *map(str, args.ns),
           "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="model sizes to measure")
    ap.add_argument("--ns", type=int, nargs="+", default=[16, 64], help="samples per prompt")
    ap.add_argument("--prompts", type=int, default=2, help="tiny-math prompts per generate call")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens generated per completion (no early end)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of (hf, vllm) per size: median and range over them")
    ap.add_argument("--models", default=None, help="folder for the random models (default: a temporary one)")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.ns, args.prompts, args.max_tokens)))
        return

    t0 = time.time()
    peak = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16, n=512)}  # bf16: slow on most CPUs
    print(f"## Rollout speed by model size (bench_sizes.py)\n\nmachine: {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; matmul peak float32 "
          f"{peak['float32'] / 1e9:.1f} GFLOP/s (2048^2), bfloat16 {peak['bfloat16'] / 1e9:.1f} GFLOP/s (512^2); {args.prompts} prompts x n, "
          f"{args.max_tokens} tokens each, T = 1.0, float32", flush=True)
    models = Path(args.models or tempfile.mkdtemp(prefix="bench-sizes-"))
    rows, starts = [], []
    for size in args.sizes:
        folder = build(models / size, size)
        runs = {"hf": [], "vllm": []}
        for r in range(args.repeats):
            for engine in ("hf", "vllm"):  # interleaved: a slow moment hits both
                runs[engine].append(run_worker(engine, folder, args))
                print(f"  {size} {engine} round {r + 1}: " + ", ".join(f"n={n} {runs[engine][-1][str(n)]['tok_s']:,.0f} tok/s"
                                                                  for n in args.ns), flush=True)
        cfg = SIZES[size]
        params = runs["hf"][0]["params"]
        for n in args.ns:
            rate = {e: [x[str(n)]["tok_s"] for x in runs[e]] for e in runs}
            context = runs["hf"][0][str(n)]["context"]
            flops_per_token = 2 * params + 4 * cfg["num_hidden_layers"] * cfg["hidden_size"] * context
            med = {e: statistics.median(v) for e, v in rate.items()}
            rows.append([size, f"{params / 1e6:.1f}M", n,
                         *(f"{med[e]:,.0f} ({min(rate[e]):,.0f}-{max(rate[e]):,.0f})" for e in ("hf", "vllm")),
                         f"{med['vllm'] / med['hf']:.2f}x",
                         *(f"{med[e] * flops_per_token / peak['float32']:.1%}" for e in ("hf", "vllm"))])
        starts.append([size, *(f"{statistics.median(x['start_s'] for x in runs[e]):.1f}" for e in ("hf", "vllm"))])
    header = ["size", "params", "n", "hf tok/s (range)", "vllm tok/s (range)", "vllm / hf", "hf % of fp32 peak",
              "vllm % of fp32 peak"]
    print("\n| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    print("\n".join("| " + " | ".join(map(str, r)) + " |" for r in rows))
    print("\n| size | hf start (s) | vllm start (s) |\n|---|---|---|")
    print("\n".join("| " + " | ".join(r) + " |" for r in starts))
    print(f"\ntotal {time.time() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
