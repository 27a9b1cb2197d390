"""The update's cost on real completion lengths: one train.update_policy, padded as before vs now.

    python projects/bench_update.py                    # about 10 minutes on 2 CPU cores
    python projects/bench_update.py --scale 1 --rows 32 --device cuda   # TTRL's own lengths, on a GPU

Real completions differ in length. TTRL's Qwen2.5-Math completions run from a few hundred tokens to
the 3,072-token cap; the embedded tiny-math's are all ~30 tokens long, so no other benchmark here
sees what padding costs. The batch: --rows completions (32 = one mini-batch of the ttrl-math500
preset: one question's 32 trained completions) after a prompt of 128 x --scale tokens, with
completion lengths from one of three distributions, fixed by a seed (the same in every process):

    long-tailed  log-normal, median 600 x scale, sigma 0.9, clipped to [8, 3072 x scale]: most are
                 short, a few are long, ~3.5% reach the cap (the shape of a base model's outputs,
                 which ramble to the cap on the questions they cannot solve)
    uniform      uniform on [8, 3072 x scale]
    equal        every completion the long-tailed batch's mean length: the same trained tokens with
                 no padding at all, the yardstick

--scale 0.25 (the default) shrinks every length 4x so that a CPU finishes; 1 is TTRL's. The model is
bench_sizes.py's 25M shape (hidden 512, 8 layers) with its 32,000-word vocabulary, 40M parameters with
the tied head, random weights. train.py's flags are the ttrl-math500 preset's update flags
(--micro-batch 2, one update per step, token-mean, float32 on a CPU; --flags to change them).

"before": the code until 2026-12-04, kept here as a reference: micro-batches of consecutive rows, each
padded to the longest row of the whole batch (what train.collate pads to), and the full logits
(rows, T, V) from the model's forward. "now": train.py as it is (Experience.micro_batches sorts the
rows by length and cuts each micro-batch to its own longest row; the head runs on completion tokens,
chunk by chunk). Each (case, code) runs in a fresh process, one warm-up update on 2 short rows first;
the processes alternate over --repeats rounds and the table gives the median and range.

Columns: trained tokens (completion tokens: the loss's), processed (every position the model runs
over, prompt and padding included), padding (its share of processed), seconds per update, trained
tokens per second, and the share of the matmul peak: 6 FLOPs per weight per real token (forward and
backward; attention scores not counted) over the time, divided by a 2048^2 matmul's FLOP/s here.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: its modules by name
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_sizes: the model shapes and the matmul peak

CASES = ("long-tailed", "uniform", "equal")
CAP, MEDIAN, PROMPT, SIGMA, SHORTEST = 3072, 600, 128, 0.9, 8


def completion_lengths(case: str, rows: int, scale: float, seed: int = 0) -> list[int]:
    """The batch's completion lengths (see the docstring), the same for every process given the seed."""
    rng, cap = np.random.default_rng(seed), round(CAP * scale)
    tailed = np.clip(np.exp(rng.normal(np.log(MEDIAN * scale), SIGMA, rows)), SHORTEST, cap).round().astype(int)
    if case == "long-tailed":
        return tailed.tolist()
    if case == "uniform":
        return rng.integers(SHORTEST, cap + 1, rows).tolist()
    return [round(tailed.mean())] * rows


def make_batch(lengths: list[int], prompt: int, vocab: int):
    """An Experience as train.collate builds it: prompt + completion per row, right-padded; random
    tokens and advantages (the update's cost does not depend on them)."""
    import torch

    import grpo
    g = torch.Generator().manual_seed(0)
    width = prompt + max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)  # (rows, L)
    mask = torch.zeros(len(lengths), width - 1)  # (rows, T)
    for i, c in enumerate(lengths):
        ids[i, :prompt + c] = torch.randint(2, vocab, (prompt + c,), generator=g)
        mask[i, prompt - 1:prompt - 1 + c] = 1
    attention = (torch.arange(width) < prompt + torch.tensor(lengths)[:, None]).long()  # (rows, L)
    return grpo.Experience(ids, attention, mask, advantages=torch.randn(len(lengths), generator=g))


def use_code_as_before() -> None:
    """Put back the padded computation: consecutive micro-batches at the batch's full width, full logits."""
    import grpo
    import train

    def consecutive(self, rows, tokens=0):
        return [(list(range(s, min(s + rows, len(self)))), self.rows(s, s + rows)) for s in range(0, len(self), rows)]
    grpo.Experience.micro_batches = consecutive
    train.lm_head = lambda model: None


def worker(opts) -> dict:
    """One update_policy in this process: its seconds and token counts, as JSON on stdout."""
    import torch

    import train
    from bench_sizes import SIZES, VOCAB, sync
    from data.build import random_qwen2

    if opts.code == "before":
        use_code_as_before()
    model = random_qwen2(dict(vocab_size=VOCAB, max_position_embeddings=4096, tie_word_embeddings=True,
                              **SIZES["25M"])).to(opts.device).train()
    args = train.parse_args(["--micro-batch", "2", "--updates-per-step", "1", "--device", opts.device, *opts.flags.split()])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    prompt = round(PROMPT * opts.scale)
    train.update_policy(model, opt, make_batch([SHORTEST, SHORTEST], prompt, VOCAB).to(opts.device), args)  # warm-up
    lengths = completion_lengths(opts.case, opts.rows, opts.scale)
    batch = make_batch(lengths, prompt, VOCAB).to(opts.device)
    micro = batch.micro_batches(args.micro_batch, args.micro_batch_tokens)
    sync(opts.device)
    start = time.perf_counter()
    train.update_policy(model, opt, batch, args)
    sync(opts.device)
    return {"seconds": time.perf_counter() - start, "trained": sum(lengths), "real": sum(lengths) + prompt * len(lengths),
            "processed": sum(mb.attention_mask.numel() for _, mb in micro), "micro_batches": len(micro),
            "at_cap": sum(c == round(CAP * opts.scale) for c in lengths),
            "params": sum(p.numel() for p in model.parameters())}


def measure(case: str, code: str, opts) -> dict:
    cmd = [sys.executable, __file__, "--one", case, "--code", code, "--rows", str(opts.rows), "--scale", str(opts.scale),
           "--device", opts.device, "--flags", opts.flags]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{case} / {code} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16, help="completions in the update (32 = one ttrl-math500 mini-batch)")
    ap.add_argument("--scale", type=float, default=0.25, help="every length x this (1 = TTRL's: median 600, cap 3072)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; the table gives the median and range")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--flags", default="", help="more train.py flags for the update, e.g. '--micro-batch 8 --micro-batch-tokens 2048'")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (float32 weights either way; add --flags '--dtype bfloat16')")
    ap.add_argument("--one", default=None, help="(internal) run one case in this process")
    ap.add_argument("--code", default="now", choices=["before", "now"], help="(internal) which code the process runs")
    opts = ap.parse_args()
    if opts.one:
        opts.case = opts.one
        print(json.dumps(worker(opts)))
        return
    import torch

    from bench_sizes import matmul_peak
    peak = matmul_peak(torch.float32, device=opts.device) if opts.device == "cpu" else matmul_peak(torch.float32, n=8192, device=opts.device)
    cases = opts.cases.split(",")
    runs = {(c, code): [] for c in cases for code in ("before", "now")}
    for r in range(opts.repeats):
        for case in cases:
            for code in ("before", "now"):
                runs[case, code].append(measure(case, code, opts))
                print(f"round {r + 1}/{opts.repeats} {case} {code}: {runs[case, code][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    first = next(iter(runs.values()))[0]
    print(f"{opts.rows} completions after a {round(PROMPT * opts.scale)}-token prompt, scale {opts.scale}, model "
          f"{first['params'] / 1e6:.0f}M parameters, flags '{('--micro-batch 2 ' + opts.flags).strip()}', {opts.device}, "
          f"float32 matmul peak {peak / 1e9:.0f} GFLOP/s; median (range) of {opts.repeats}")
    print("| lengths | code | trained tokens | processed tokens | padding | micro-batches | s / update | trained tok/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    per_token = {}
    for (case, code), rs in runs.items():
        s = [x["seconds"] for x in rs]
        med, x = statistics.median(s), rs[0]
        per_token[case, code] = med / x["trained"]
        cap = f" ({x['at_cap']} at the cap)" if case == "long-tailed" else ""
        print(f"| {case}{cap} | {code} | {x['trained']} | {x['processed']} | {1 - x['real'] / x['processed']:.0%} | "
              f"{x['micro_batches']} | {med:.2f} ({min(s):.2f}-{max(s):.2f}) | {x['trained'] / med:.0f} | "
              f"{6 * x['params'] * x['real'] / med / peak:.0%} |")
    for case in cases:
        print(f"{case}: now / before, time per update {per_token[case, 'now'] / per_token[case, 'before']:.2f}x"
              + (f"; time per trained token vs equal lengths (now) {per_token[case, 'now'] / per_token['equal', 'now']:.2f}x"
                 if "equal" in cases else ""))


if __name__ == "__main__":
    main()
