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

    python projects/bench_sizes.py --table step           # about 10 minutes; needs TRL (requirements-bench.txt)
    python projects/bench_sizes.py --table step --sizes 100M --device cuda --engines hf   # a GPU without vLLM

The step table: one TTRL step on the 25M model (--sizes to change), nanoTTRL's train.py with each
engine (--engines) against TRL's GRPOTrainer (transformers generate), same model, prompts (tiny-math
questions in the plain-text format, answer format "text"), --prompts x --n completions of --max-tokens,
same majority vote reward, no KL, one update per step. Each trainer runs --steps steps in a fresh
process, the first dropped; trainers alternate TRL, hf, vllm, TRL, ... over --repeats rounds (median,
range). Phases: ours from metrics.jsonl (sample, reward, train, sync); TRL's generate calls are timed by
wrapping model.generate, the rest of its step (reward, loss, update, its logging) is "train". The
train phase's FLOPs are 3x a forward pass (forward + backward) over every trained token.
projects/bench_speed.py's section 3 runs the same TRL harness (run_trl) on the embedded tiny-math model,
in that model's own prompt format with its boxed answers, as train.py does by default.

--device: where both trainers run. cpu: float32 throughout, shares of this CPU's float32 matmul peak.
cuda (one GPU): float32 weights and optimizer with bfloat16 autocast in both trainers, generation
included (train.py --dtype bfloat16, its GPU default; TRL bf16=True, use_cpu=False), and the shares
divide by the peak of a bfloat16 8192^2 matmul on that GPU. GPU work runs asynchronously, so every
clock that splits a step waits for it (torch.cuda.synchronize): around the peak's matmuls and TRL's
generate and step ends; train.py's phases already end on values read back from the GPU (token ids, the
weight norm after the update). --engines hf leaves vLLM out (never imported): for machines without it.
"""
import argparse
import importlib.util
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
    """A random Qwen2 model of `size` with a 32k vocabulary (seed 0), saved in HF format (both engines load it)."""
    from data.build import make_tokenizer, random_qwen2
    if (folder / "config.json").exists():
        return folder
    chars = [chr(c) for c in range(32, 127)]  # printable ASCII: the prompts' characters
    tok = make_tokenizer(["<pad>", "<eos>"], chars + [f"<f{i}>" for i in range(VOCAB - 2 - len(chars))])
    random_qwen2(dict(vocab_size=VOCAB, max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=0,
                      eos_token_id=1, bos_token_id=1, **SIZES[size]), save=folder, tokenizer=tok)
    return folder


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 3, device: str = "cpu", inner: int = 1) -> float:
    """FLOP/s of the best of `repeats` timings of `inner` n x n matmuls on `device` (after one warm-up
    round). A GPU's timing waits for its kernels; `inner` > 1 spreads that wait's cost over several."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)

    def matmuls():
        for _ in range(inner):
            a @ b
        sync(device)

    matmuls()  # warm-up: first-call allocations (on a GPU also cuBLAS's handle and the clocks' ramp-up)
    best = min(_seconds(matmuls) for _ in range(repeats))
    return 2 * n ** 3 * inner / best


def sync(device: str) -> None:
    """Wait for the GPU's queued kernels (it runs them asynchronously), so a wall clock around GPU work
    counts them; nothing to wait for on a CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


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


# ----------------------------------------------------------------------------- one TTRL step vs TRL
def ours_step(engine: str, folder: Path, args) -> dict:
    """train.py on the random model, in a fresh process: mean seconds per phase over steps 2..--steps."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "train.py", "--model", str(folder), "--engine", engine, "--max-steps", str(args.steps),
               "--eval-k", "0", "--prompts-per-step", str(args.prompts), "--n-votes", str(args.n), "--n-train",
               str(args.n), "--max-tokens", str(args.max_tokens), "--answer-format", args.answer_format, "--device", args.device,
               "--dtype", args.dtype, "--out", out]
        p = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
        rows = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")][1:]  # step 1 = warm-up
    mean = {k[2:]: statistics.mean(r[k] for r in rows) for k in ("t_sample", "t_reward", "t_train", "t_sync")}
    mean["step"] = sum(mean.values())
    mean["length"] = statistics.mean(r["response_len"] for r in rows)
    return mean


def trl_step(folder: str, args) -> dict:
    """In a fresh process: TRL's GRPOTrainer on the same model and workload as train.py (the model's
    prompt format, args.answer_format's reward); seconds per step from a callback at each step end
    (steps 2..--steps), generate's share from a timer around model.generate."""
    import warnings
    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")  # TRL's vLLM path is not used
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from data import tinymath
    from data.prompts import make_prompt
    from data.tasks import embedded_format
    from answers import extract, majority_vote

    ends, generate_s, lengths = [], [], []

    class StepClock(TrainerCallback):
        def on_step_end(self, *a, **k):
            sync(args.device)  # the update's kernels may still be queued
            ends.append(time.perf_counter())

    def vote_reward(prompts: list[str], completions: list[str], **_) -> list[float]:
        """train.py's reward for args.answer_format: each completion's answer (answers.extract), majority
        vote within each prompt's group (exact strings for "text"). TRL passes the completions flat, each
        prompt repeated: the groups are the completions of one prompt."""
        groups = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        rewards = [0.0] * len(completions)
        for idx in groups.values():
            vote = majority_vote([extract(completions[i], args.answer_format) for i in idx], exact=args.answer_format == "text")
            for i, r in zip(idx, vote.rewards):
                rewards[i] = float(r)
        return rewards

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # float32 master weights, as train.py
    generate = model.generate

    def timed_generate(*a, **k):
        sync(args.device)  # the step's earlier GPU work is not generate's
        t = time.perf_counter()
        out = generate(*a, **k)
        sync(args.device)
        generate_s.append(time.perf_counter() - t)
        lengths.append(out.shape[1] - k["input_ids"].shape[1])
        return out

    model.generate = timed_generate  # TRL calls the (unwrapped) model's generate once per step
    embedded = embedded_format(folder)  # as train.py: an embedded model (tiny-math) speaks its own format
    data = Dataset.from_list([{"prompt": make_prompt(r["question"], tok, embedded, answer_format=args.answer_format)["text"]}
                              for r in tinymath.test_split()])
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=args.prompts * args.n,
        num_generations=args.n, max_completion_length=args.max_tokens, max_steps=args.steps, temperature=1.0,
        beta=0.0, learning_rate=5e-5, gradient_checkpointing=False,  # as train.py (TRL defaults: 1e-6, checkpointing on)
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
        bf16=args.dtype == "bfloat16", use_cpu=args.device == "cpu")  # bf16: autocast over the float32 weights, as train.py
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=vote_reward, args=config,
                          train_dataset=data, callbacks=[StepClock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    steps = [b - a for a, b in zip(ends, ends[1:])]  # from step 1's end: step 1 dropped
    sample = statistics.mean(generate_s[1:])
    step = statistics.mean(steps)
    return {"sample": sample, "train": step - sample, "step": step, "length": statistics.mean(lengths[1:])}


def run_trl(folder: Path, args) -> dict:
    """trl_step in a fresh process (this script as --worker trl), with args' steps, prompts, n, max_tokens,
    device and answer_format; raises SystemExit with the end of its stderr if it fails. bench_speed.py's
    section 3 calls it too."""
    cmd = [sys.executable, __file__, "--worker", "trl", str(folder), "--steps", str(args.steps), "--prompts",
           str(args.prompts), "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--device", args.device,
           "--answer-format", args.answer_format]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def step_table(args, peak: dict, models: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from data import tinymath
    from data.prompts import make_prompt
    for size in args.sizes:
        folder = build(models / size, size)
        tok = AutoTokenizer.from_pretrained(folder)
        prompts = [make_prompt(r["question"], tok, None, answer_format=args.answer_format)["text"] for r in tinymath.test_split()]
        prompt_len = statistics.mean(len(tok(p).input_ids) for p in prompts)
        trainers = {"TRL GRPOTrainer (generate)": None, **{f"nanoTTRL, {e} engine": e for e in args.engines}}
        runs = {name: [] for name in trainers}
        for r in range(args.repeats):
            for name, engine in trainers.items():  # interleaved: a slow moment hits every trainer
                runs[name].append(ours_step(engine, folder, args) if engine else run_trl(folder, args))
                print(f"  {size} {name} round {r + 1}: {runs[name][-1]['step']:.2f} s/step", flush=True)
        cfg = SIZES[size]
        with torch.device("meta"):  # the parameter count without allocating the weights
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).parameters())
        trl_med = statistics.median(x["step"] for x in runs["TRL GRPOTrainer (generate)"])
        rows = []
        for name, xs in runs.items():
            med = {k: statistics.median(x.get(k, 0.0) for x in xs) for k in ("sample", "reward", "train", "sync", "step", "length")}
            seqs, length = args.prompts * args.n, med["length"]
            attention = 4 * cfg["num_hidden_layers"] * cfg["hidden_size"]
            sample_flops = seqs * length * (2 * params + attention * (prompt_len + length / 2))
            train_flops = 3 * seqs * (prompt_len + length) * (2 * params + attention * (prompt_len + length) / 2)
            rows.append([name, *(f"{med[k]:.2f}" for k in ("sample", "reward", "train", "sync")),
                         f"{med['step']:.2f} ({min(x['step'] for x in xs):.2f}-{max(x['step'] for x in xs):.2f})",
                         f"{med['step'] / trl_med:.2f}", f"{sample_flops / med['sample'] / peak[args.dtype]:.1%}",
                         f"{train_flops / med['train'] / peak[args.dtype]:.1%}", f"{length:.0f}"])
        print(f"\n### One TTRL step, {size} ({params / 1e6:.1f}M parameters): {args.prompts} prompts x {args.n} completions "
              f"x {args.max_tokens} tokens (prompt {prompt_len:.0f} tokens), median of {args.repeats} rounds of steps "
              f"2-{args.steps}, on {args.device} in {args.dtype}; goal ours / TRL <= 0.5 with the same engine")
        peak_name = "GPU bf16" if args.device == "cuda" else "CPU fp32"  # the matmul peak the shares divide by
        header = ["trainer", "sample (s)", "reward (s)", "train (s)", "sync (s)", "step (s, range)", "/ TRL",
                  f"sample % of {peak_name} peak", f"train % of {peak_name} peak", "mean length"]
        print("\n| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
        print("\n".join("| " + " | ".join(map(str, r)) + " |" for r in rows))


def rollouts_table(args, peak: dict, models: Path) -> None:
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", choices=["rollouts", "step"], default="rollouts",
                    help="rollouts: tokens/s of both engines by size; step: one TTRL step, ours vs TRL's GRPOTrainer")
    ap.add_argument("--sizes", nargs="+", default=None, choices=list(SIZES),
                    help="model sizes to measure (default: all for rollouts, 25M for step)")
    ap.add_argument("--ns", type=int, nargs="+", default=[16, 64], help="rollouts: samples per prompt")
    ap.add_argument("--n", type=int, default=8, help="step: completions per prompt (votes = trained)")
    ap.add_argument("--steps", type=int, default=3, help="step: steps per trainer run (the first dropped as warm-up)")
    ap.add_argument("--prompts", type=int, default=2, help="tiny-math prompts per generate call / per step")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens generated per completion")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds per size: median and range over them")
    ap.add_argument("--models", default=None, help="folder for the random models (default: a temporary one)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="step: where both trainers run; cuda: one GPU, bfloat16 autocast, shares of its bf16 matmul peak")
    ap.add_argument("--engines", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"],
                    help="step: nanoTTRL's rollout engines timed against TRL; hf alone where vLLM is not installed "
                         "(it is then never imported)")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "FOLDER"), help=argparse.SUPPRESS)
    # the step table's answer format is "text" (the docstring's); bench_speed.py's section 3 passes tiny-math's to run_trl
    ap.add_argument("--answer-format", default="text", choices=["boxed", "text"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.dtype = "bfloat16" if args.device == "cuda" else "float32"  # both trainers' compute dtype (docstring)
    if args.worker:
        engine, folder = args.worker
        print(json.dumps(trl_step(folder, args) if engine == "trl" else worker(engine, folder, args.ns, args.prompts,
                                                                                args.max_tokens)))
        return
    args.sizes = args.sizes or (list(SIZES) if args.table == "rollouts" else ["25M"])
    if args.device == "cuda" and args.table == "rollouts":
        ap.error("--device cuda: the step table only (--table step); the rollouts table runs on the CPU")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU")
    if args.table == "step" and "vllm" in args.engines and importlib.util.find_spec("vllm") is None:
        ap.error("--engines vllm: vLLM is not installed; pass --engines hf")  # before minutes of TRL runs, not after

    t0 = time.time()
    machine = f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
    if args.device == "cuda":  # the GPU's own peak: 8192^2 bf16 matmuls, 10 per timing (small ones do not fill it)
        peak = {"bfloat16": matmul_peak(torch.bfloat16, n=8192, repeats=5, device="cuda", inner=10)}
        machine += (f"; GPU {torch.cuda.get_device_name()}, matmul peak bfloat16 {peak['bfloat16'] / 1e12:.0f} TFLOP/s "
                    f"(8192^2); bfloat16 autocast over float32 weights")
    else:
        peak = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16, n=512)}  # bf16: slow on most CPUs
        machine += (f"; matmul peak float32 {peak['float32'] / 1e9:.1f} GFLOP/s (2048^2), bfloat16 "
                    f"{peak['bfloat16'] / 1e9:.1f} GFLOP/s (512^2); float32")
    print(f"## {'Rollout speed' if args.table == 'rollouts' else 'One TTRL step'} by model size (bench_sizes.py "
          f"--table {args.table})\n\n{machine}; {args.max_tokens} tokens per completion, T = 1.0", flush=True)
    models = Path(args.models or tempfile.mkdtemp(prefix="bench-sizes-"))
    (rollouts_table if args.table == "rollouts" else step_table)(args, peak, models)
    print(f"\ntotal {time.time() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
