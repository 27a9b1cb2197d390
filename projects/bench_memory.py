"""Peak memory where the vocabulary multiplies everything: the trainer's log-prob pass (forward and
backward) and the hf engine's generation, on a randomly initialised Qwen2 with Qwen2.5's 151,936-word
vocabulary (built from a config: no download).

    python projects/bench_memory.py                                   # about a minute on 2 CPU cores
    python projects/bench_memory.py --dtype bfloat16 --tokens 256     # as on a GPU (slow on a CPU)

Each measurement runs in a fresh process and reports the peak resident memory (ru_maxrss) minus the
resident memory just before the measured call: the call's own high-water mark. "as before" is the
code as it was until 2026-11-27, kept here as a reference: the log-prob pass took a float32
log-softmax of the whole batch (logits.float() / T, then log_softmax) and the token entropy inside
the gradient pass; the hf engine asked generate() for output_scores (one float32 (batch, V) tensor
per generated token). "full logits" is the log-prob pass as it was until 2026-12-04: the model's
forward computed the logits (rows, T, V), then the log-softmax went row by row (train.lm_head made to
answer None, as it does for models whose head is not separable). "now" is train.sequence_logprobs and
sample.HFEngine as they are: the head runs on the hidden states, HEAD_CHUNK tokens at a time. All run
with float32 weights, under --dtype: float32 by default (bf16 matmuls are far slower on CPUs
without bf16 instructions), bfloat16 as on a GPU (autocast; the logits then come in bf16 and .float() is one more copy).
"""
import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: its modules by name

VOCAB = 151936  # Qwen2.5's


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def random_model(hidden: int, layers: int):
    """The measured model: random weights (data/build.py, seed 0), Qwen2.5's vocabulary, `hidden` wide, `layers` deep."""
    from data.build import random_qwen2

    return random_qwen2(dict(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=2 * hidden, max_position_embeddings=8192,
                             tie_word_embeddings=True))


class IdsTokenizer:
    """What HFEngine needs of a tokenizer, for a model with random weights: every prompt is `length`
    copies of token 5, and no text is decoded (gpu_check.py uses it too)."""
    pad_token_id, eos_token_id = 0, 1

    def __init__(self, length: int):
        self.length = length

    def get_vocab(self):
        return {}

    def __call__(self, text):
        return {"input_ids": [5] * self.length}

    def decode(self, ids, skip_special_tokens=True):
        return ""


def logprob_pass(args, code: str) -> None:
    import torch

    import grpo
    import train

    if code == "logits":
        train.lm_head = lambda model: None

    model = random_model(args.hidden, args.layers).train()
    ids = torch.randint(0, VOCAB, (args.rows, args.tokens))
    batch = grpo.Experience(ids, torch.ones_like(ids), torch.ones(args.rows, args.tokens - 1))
    start = rss_mib()
    if code == "before":
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        logp = (logits.float() / 1.0).log_softmax(-1).gather(-1, batch.targets[..., None]).squeeze(-1)
        with torch.no_grad():
            p = (logits.float() / 1.0).log_softmax(-1)
            entropy = -(p.exp() * p).sum(-1)  # noqa: F841 (computed, as it was, and dropped)
    else:
        logp = train.sequence_logprobs(model, batch, 1.0, args.dtype)
    (-(logp * batch.mask).sum() / batch.mask.sum()).backward()
    report(start)


def generation(args, code: str) -> None:
    import torch

    from sample import HFEngine

    model = random_model(args.hidden, args.layers).eval()

    engine = HFEngine(model, IdsTokenizer(16), batch_size=args.sequences, dtype=args.dtype)
    start = rss_mib()
    if code == "before":
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
            out = model.generate(input_ids=torch.full((args.sequences, 16), 5), attention_mask=torch.ones(args.sequences, 16, dtype=torch.long),
                                 max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=True,
                                 pad_token_id=0, eos_token_id=1, output_scores=True, return_dict_in_generate=True)
            torch.stack(out.scores, 1).float().log_softmax(-1)
    else:
        engine.generate([{"text": ""}], n=args.sequences, temperature=1.0, max_tokens=args.new_tokens, seed=0)
    report(start)


def report(start: float) -> None:
    print(json.dumps({"peak_above_start_mib": round(peak_mib() - start, 1)}))


def measure(what: str, code: str, args) -> float:
    cmd = [sys.executable, __file__, "--one", what, "--code", code, "--rows", str(args.rows),
           "--tokens", str(args.tokens), "--hidden", str(args.hidden), "--layers", str(args.layers),
           "--sequences", str(args.sequences), "--new-tokens", str(args.new_tokens), "--dtype", args.dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["peak_above_start_mib"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2, help="log-prob pass: sequences in the micro-batch")
    ap.add_argument("--tokens", type=int, default=1024, help="log-prob pass: tokens per sequence")
    ap.add_argument("--hidden", type=int, default=256, help="model width (1536 = Qwen2.5-Math-1.5B's)")
    ap.add_argument("--layers", type=int, default=2, help="model depth")
    ap.add_argument("--sequences", type=int, default=32, help="generation: sequences in one generate() call")
    ap.add_argument("--new-tokens", type=int, default=128, help="generation: tokens generated per sequence")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype (train.py --dtype)")
    ap.add_argument("--one", choices=["logprobs", "generation"], default=None, help="(internal) run one measurement")
    ap.add_argument("--code", choices=["before", "logits", "now"], default="now", help="(internal) which code to measure")
    args = ap.parse_args()
    if args.one:
        (logprob_pass if args.one == "logprobs" else generation)(args, args.code)
        sys.exit(0)
    elements = args.rows * (args.tokens - 1) * VOCAB
    print("| measured (peak above start, MiB) | as before (2026-11-27) | full logits (until 2026-12-04) | now | "
          "before / now |\n|---|---|---|---|---|")
    for what, label in (("logprobs", f"log-prob pass, {args.rows} x {args.tokens} tokens, forward + backward "
                                     f"(one float32 copy of the logits: {elements * 4 / 2**20:.0f} MiB)"),
                        ("generation", f"hf engine, {args.sequences} sequences x {args.new_tokens} new tokens "
                                       f"(output_scores: {args.sequences * args.new_tokens * VOCAB * 4 / 2**20:.0f} MiB)")):
        old, new = measure(what, "before", args), measure(what, "now", args)
        logits = f"{measure(what, 'logits', args):.0f}" if what == "logprobs" else "-"
        print(f"| {label} | {old:.0f} | {logits} | {new:.0f} | {old / max(new, 1):.1f}x |", flush=True)
