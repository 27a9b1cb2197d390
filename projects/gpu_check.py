"""The GPU check: what a real GPU run needs, measured in one go (343 s on one H200, 2026-12-04; the
figures are in docs/gpu.md), written to one JSON file. No vLLM, no model hub, no internet needed.

    python projects/gpu_check.py --out gpu_check.json                      # on a GPU machine
    python projects/gpu_check.py --small --device cpu --out /tmp/g.json    # the same code, tiny sizes, on CPU

Checks (each records its own error and the others go on):
  a. update     one GRPO update at the ttrl-math500 preset's sizes, on a randomly initialised model of
                Qwen2.5-Math-1.5B's shape (from its config): 32 completions of 3.2k tokens in
                micro-batches of 2, gradient checkpointing, bf16 autocast, float32 weights and AdamW,
                the KL reference. Peak GPU memory and seconds, without and with a block of
                --vllm-gpu-memory x the GPU standing in for the engine, beside docs/paper.md's arithmetic.
  b. precision  float32 vs bf16-autocast log-probs of the same tokens (max and mean gap), and how many
                weights one AdamW step at lr 5e-7 changes: in float32, and as bf16 would store them.
  c. engine     the hf engine's memory per generated token on that model (two lengths, the slope).
  d. runs       python train.py --engine hf on tiny-math, tiny-digits and tiny-sounds: 2 steps with a
                checkpoint after step 1, then --resume (which redoes step 2): exit codes, seconds, and
                whether the resumed step 2 equals the first one.
  e. torchrun   python -m torch.distributed.run --nproc_per_node 1 train.py, DDP and --fsdp, 2 steps.

On a GPU machine without internet, bring what it lacks, prepared on a machine with internet, in two
git-ignored folders of the repository, and run the check through projects/gpu_check.sh (it installs
the wheels aside, runs this check and collects its logs; its header has the commands):
  - .cache: the embedded models, built with NANOTTRL_CACHE=.cache python -m data.tinymath (and
    data.tinydigits, data.tinyaudio);
  - .whl: math-verify 0.9.0, latex2sympy2_extended 1.11.0 and antlr4-python3-runtime 4.13.2 as wheels
    for the GPU machine's Python (pip download --no-deps --python-version ... --platform ...).
Each train.py run's whole output is kept beside its run folder (--work), e.g. runs/gpu_check/tiny-math.log.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: its modules by name

import torch  # noqa: E402

from data.build import random_qwen2  # noqa: E402  (the models here: seed 0, float32 weights as the trainer keeps them)

# Qwen2.5-Math-1.5B's shape (its config.json): 1.54B parameters, tied embeddings
QWEN_1_5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)
SMALL = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)


def peak_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def a_update(args, device: str) -> dict:
    """One update at the preset's sizes: train.update_policy on 32 completions, micro-batch 2."""
    import grpo
    import train
    from config import parse_args

    shape = SMALL if args.small else QWEN_1_5B
    run_args = parse_args(["--preset", "ttrl-math500", "--device", device, "--dtype", args.dtype])
    rows = 4 if args.small else run_args.prompts_per_step * run_args.n_train // run_args.updates_per_step  # 32
    prompt, length = (8, 64) if args.small else (150, 150 + run_args.max_tokens)  # tokens per sequence
    run_args.updates_per_step = 1  # one update of `rows` completions: the preset's mini-batch
    model = random_qwen2(shape, device).train()
    model.gradient_checkpointing_enable()
    ref = random_qwen2(shape, device).to(torch.bfloat16 if args.dtype == "bfloat16" else torch.float32).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=run_args.lr, weight_decay=run_args.weight_decay)
    ids = torch.randint(0, shape["vocab_size"], (rows, length), device=device)
    mask = torch.zeros(rows, length - 1, device=device)
    mask[:, prompt - 1:] = 1
    batch = grpo.Experience(ids, torch.ones_like(ids), mask, advantages=torch.randn(rows, device=device))
    params = sum(p.numel() for p in model.parameters())
    out = {"parameters": params, "completions": rows, "tokens_per_completion": length, "micro_batch": run_args.micro_batch}
    engine_block = None
    for with_engine in (False, True):
        if with_engine and device.startswith("cuda"):  # the engine's share of the GPU, as vLLM would take it
            total = torch.cuda.get_device_properties(0).total_memory
            engine_block = torch.empty(int(run_args.vllm_gpu_memory * total), dtype=torch.uint8, device=device)
        reset(device)
        t = time.time()
        # the preset's U = 8 updates per step take the old policy's log-probs first (update_policy at U > 1)
        batch.old_logp, _ = train.no_grad_logprobs(model, batch, run_args, entropy=True)
        batch.ref_logp = train.no_grad_logprobs(ref, batch, run_args)
        t_frozen = time.time() - t
        stats, _, _ = train.update_policy(model, opt, batch, run_args)  # the numbers; the old log-probs are batch.old_logp
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        key = "with_engine_block" if with_engine else "alone"
        out[key] = {"peak_gb": peak_gb(device), "seconds": round(time.time() - t, 2),
                    "seconds_no_grad_passes": round(t_frozen, 2), "update": stats["update"], "loss": stats["loss"]}
        if engine_block is not None:
            out[key]["engine_block_gb"] = round(engine_block.numel() / 2**30, 1)
    # docs/paper.md's arithmetic for the same run: trainer 16 B/param, reference 2 B/param (bf16),
    # the logits of one micro-batch (bf16 copy + one float32 copy + one sequence's gradient)
    v, mb = shape["vocab_size"], run_args.micro_batch
    out["docs_arithmetic_gb"] = {"trainer": round(16 * params / 2**30, 1), "reference": round(2 * params / 2**30, 1),
                                 "logits": round((2 + 4) * mb * length * v / 2**30 + 4 * length * v / 2**30, 1)}
    return out


def b_precision(args, device: str) -> dict:
    """float32 vs bf16-autocast log-probs; weights changed by one AdamW step at lr 5e-7."""
    import grpo
    import train

    shape = SMALL if args.small else QWEN_1_5B
    model = random_qwen2(shape, device).train()
    length = 64 if args.small else 512
    ids = torch.randint(0, shape["vocab_size"], (2, length), device=device)
    batch = grpo.Experience(ids, torch.ones_like(ids), torch.ones(2, length - 1, device=device))
    with torch.no_grad():
        fp32 = train.sequence_logprobs(model, batch, 1.0, "float32")
        bf16 = train.sequence_logprobs(model, batch, 1.0, "bfloat16")
    gap = (fp32 - bf16).abs()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=5e-7, weight_decay=0.01)
    (-train.sequence_logprobs(model, batch, 1.0, args.dtype).mean()).backward()
    opt.step()
    changed = stored = total = 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            changed += (p != before[n]).sum().item()
            stored += (p.bfloat16() != before[n].bfloat16()).sum().item()
            total += p.numel()
    return {"logprob_gap_max": gap.max().item(), "logprob_gap_mean": gap.mean().item(),
            "weights": total, "changed_in_float32": changed, "changed_as_bf16": stored,
            "share_kept_by_bf16": round(stored / max(changed, 1), 6)}


def c_engine(args, device: str) -> dict:
    """The hf engine's peak memory at two generation lengths: the slope is the memory per token."""
    from bench_memory import IdsTokenizer  # projects/, this script's own folder
    from sample import HFEngine

    shape = SMALL if args.small else QWEN_1_5B
    model = random_qwen2(shape, device).eval()
    sequences = 8 if args.small else 64
    engine = HFEngine(model, IdsTokenizer(32), batch_size=sequences, dtype=args.dtype)  # random prompts
    out = {"sequences": sequences}
    for tokens in ((16, 32) if args.small else (128, 256)):
        reset(device)
        t = time.time()
        groups = engine.generate([{"text": ""}], n=sequences, temperature=1.0, max_tokens=tokens, seed=0)
        out[f"{tokens}_tokens"] = {"peak_gb": peak_gb(device), "seconds": round(time.time() - t, 2),
                                   "generated": sum(len(r.ids) for g in groups for r in g)}
    lengths = sorted(int(k.split("_")[0]) for k in out if k.endswith("_tokens"))
    if device.startswith("cuda"):
        low, high = (out[f"{n}_tokens"]["peak_gb"] for n in lengths)
        out["mib_per_generated_token"] = round((high - low) * 1024 / (sequences * (lengths[1] - lengths[0])), 4)
    return out


def run(cmd: list[str], cwd: Path, timeout: int, log: Path) -> dict:
    """Runs cmd; its whole output goes to `log`, its last lines (progress bars left out) into the report."""
    t = time.time()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    log.write_text(p.stdout + p.stderr)
    tail = [line for line in (p.stdout + p.stderr).splitlines() if line.strip() and "%|" not in line][-3:]
    return {"exit": p.returncode, "seconds": round(time.time() - t, 1), "tail": tail}


def metrics(folder: Path) -> list[dict]:
    drop = {"t_sample", "t_reward", "t_train", "t_sync"}
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in open(folder / "metrics.jsonl")]


def d_runs(args, device: str, work: Path) -> dict:
    """Each embedded task end to end, 2 steps with a checkpoint after step 1, then --resume."""
    tasks = {"tiny-math": [], "tiny-digits": ["--preset", "tiny-digits"],
             "tiny-sounds": ["--preset", "tiny-sounds", "--encoder", "tfidf"]}  # tf-idf: no MiniLM wheel to carry
    if args.small:
        tasks = {"tiny-math": []}
    out = {}
    for name, flags in tasks.items():
        folder = work / name
        base = [sys.executable, str(REPO / "train.py")]
        first = run(base + flags + ["--engine", "hf", "--device", device, "--max-steps", "2", "--save-every", "1",
                                    "--eval-k", "2", "--out", str(folder), "--start-over"], REPO, 900,
                    work / f"{name}.log")
        steps = metrics(folder) if first["exit"] == 0 else []
        shutil.rmtree(folder / "final", ignore_errors=True)  # as a kill during step 2 leaves it (a finished run is not redone)
        resumed = run(base + ["--resume", str(folder)], REPO, 900, work / f"{name}-resume.log")
        again = metrics(folder) if resumed["exit"] == 0 else []
        equal = bool(steps and again and steps[1] == again[1])
        out[name] = {"run": first, "resume": resumed, "resumed_step_2_equal": equal,
                     "step_2": again[1] if len(again) > 1 else None}
        if steps and len(again) > 1 and not equal:  # which figures differ: a float's last bits, or a real change
            out[name]["step_2_differs"] = {k: [steps[1].get(k), again[1].get(k)] for k in steps[1].keys() | again[1].keys()
                                           if steps[1].get(k) != again[1].get(k)}
    return out


def e_torchrun(args, device: str, work: Path) -> dict:
    out = {}
    for mode, flags in (("ddp", []), ("fsdp", ["--fsdp"])):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(REPO / "train.py"),
               "--engine", "hf", "--device", device, "--max-steps", "2", "--eval-k", "0", "--save-every", "0",
               "--out", str(work / f"torchrun-{mode}"), "--start-over", *flags]
        out[mode] = run(cmd, REPO, 600, work / f"torchrun-{mode}.log")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the JSON file to write")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="compute dtype (default: bfloat16 on GPU)")
    ap.add_argument("--small", action="store_true", help="tiny sizes: the CPU test of this script")
    ap.add_argument("--checks", default="abcde", help="which checks to run, e.g. abc")
    ap.add_argument("--work", default="runs/gpu_check", help="folder for the train.py runs of checks d and e")
    args = ap.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
              "torch": torch.__version__, "dtype": args.dtype, "small": args.small}
    try:
        import transformers
        report["transformers"] = transformers.__version__
    except ImportError:
        pass
    checks = {"a": ("update", lambda: a_update(args, args.device)), "b": ("precision", lambda: b_precision(args, args.device)),
              "c": ("engine", lambda: c_engine(args, args.device)), "d": ("runs", lambda: d_runs(args, args.device, work)),
              "e": ("torchrun", lambda: e_torchrun(args, args.device, work))}
    for letter in args.checks:
        name, fn = checks[letter]
        t = time.time()
        try:
            report[name] = fn()
        except Exception as e:  # recorded, and the other checks still run
            report[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        report[name]["check_seconds"] = round(time.time() - t, 1)
        print(f"{letter}. {name}: {json.dumps(report[name])[:300]}", flush=True)
        reset(args.device)
        Path(args.out).write_text(json.dumps(report, indent=1))  # after every check: a cut-off run keeps its results
    os.sync()


if __name__ == "__main__":
    main()
