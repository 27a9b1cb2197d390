"""Every flag of train.py, the paper recipes (--preset) and the checks on them: one place to read
what a run can be told to do.

    python train.py --help                         # the flags, grouped as below
    python train.py --preset ttrl-math500          # a recipe: sets defaults, flags given too override it

Scope: the flags. `parse_args` returns the resolved namespace that train.py saves as the run's
config.json; with --resume it is that run's config.json, checked against the flags given
(checkpoint.resume_config). No model or data is loaded here; once the flags pass their checks,
torch is imported to resolve --device (cuda if a GPU is visible) and --dtype.
"""
import argparse
import json
import math
from pathlib import Path

import data.files
from rewards import REWARDS

# Light imports only: train.py checks the flags before its own slow imports (torch, math-verify), so a
# bad flag fails in a fraction of a second.

# The TTRL paper's recipes (docs/papers.md, docs/paper.md): Qwen2.5-Math, 64 votes / 32 trained,
# 8 prompts per step in mini-batches of 1 prompt (8 updates per step), lr 5e-7 cosine with 3% warm-up,
# k3 KL 0.001, clip 0.2, T = 1.0, responses up to 3072 tokens. A preset sets defaults; flags override.
_TTRL = dict(model="Qwen/Qwen2.5-Math-1.5B", n_votes=64, n_train=32, prompts_per_step=8, updates_per_step=8,
             lr=5e-7, lr_schedule="cosine", warmup_ratio=0.03, weight_decay=0.01, kl_coef=0.001, eps_low=0.2,
             eps_high=0.2, loss_agg="token-mean", temperature=1.0, top_p=1.0, max_tokens=3072, micro_batch=2,
             grad_checkpointing=True,
             eval_k=16, eval_temperature=0.6, eval_top_p=0.95)
PRESETS = {
    # TTRV (docs/papers.md) on the embedded image task: frequency reward plus the
    # entropy term in its per-sample form (the literal one cancels in group advantages).
    "tiny-digits": dict(model="tiny-digits", data="tiny-digits", reward="frequency", entropy_coef=0.2,
                        entropy_form="per-sample", n_votes=16, n_train=8, prompts_per_step=16, epochs=2,
                        lr=1e-4, max_tokens=12, eval_k=16),
    # OP-TTRAV (docs/papers.md) on the embedded audio task: free-text answers,
    # 16 votes / 4 trained, no KL; --reward picks the consensus (majority / centroid / cluster / judge).
    "tiny-sounds": dict(model="tiny-sounds", data="tiny-sounds", answer_format="text", reward="cluster", n_votes=16,
                        n_train=4, prompts_per_step=16, epochs=2, lr=1e-4, max_tokens=28, eval_k=16),
    # OP-TTRAV's video half on the embedded clips (4 frames each, the model's own): the same recipe,
    # at lr 2e-5 (at 1e-4 accuracy fell in 7 of 9 runs, over three reward modes: docs/video.md).
    "tiny-clips": dict(model="tiny-clips", data="tiny-clips", answer_format="text", reward="cluster", n_votes=16,
                       n_train=4, prompts_per_step=16, epochs=2, lr=2e-5, max_tokens=28, eval_k=16),
    # OP-TTRAV's recipe (same file) for GPU users: Qwen2.5-Omni-3B's thinker on an audio QA file of
    # theirs (--data FILE --audio-key COL), 16 votes / 4 trained, 4 prompts per step, T = 1.0, no KL,
    # cluster vote over BGE-small embeddings. lr is not given there: TTRL's 5e-7. Untested (no GPU here).
    "op-ttrav-omni": dict(model="Qwen/Qwen2.5-Omni-3B", data=None, answer_format="text", reward="cluster",
                          encoder="BAAI/bge-small-en-v1.5", n_votes=16, n_train=4, prompts_per_step=4, lr=5e-7,
                          kl_coef=0.0, temperature=1.0, max_tokens=256, micro_batch=4, grad_checkpointing=True,
                          eval_k=8),
    # Instruction following without references (OP-TTRAV's text setting, UltraFeedback-style prompts in a
    # JSONL of theirs: --data FILE): the whole response is the answer, rewarded by its cosine to the group's
    # medoid response (MiniLM, packaged); the prompt is the instruction alone in the chat template.
    # Evaluate with eval.py --win-rate against the start model (docs/unlabeled.md). Untested (no GPU here).
    "ttrl-instruct": dict(model="Qwen/Qwen2.5-1.5B-Instruct", data=None, answer_format="text", reward="centroid",
                          prompt_template=str(Path(__file__).parent / "data" / "templates" / "instruct.json"),
                          n_votes=16, n_train=4, prompts_per_step=4, lr=5e-7, kl_coef=0.0, temperature=1.0,
                          max_tokens=512, micro_batch=4, grad_checkpointing=True, epochs=2, eval_k=4),
    "ttrl-math500": {**_TTRL, "data": "math500", "epochs": 10},
    "ttrl-aime24": {**_TTRL, "data": "aime24", "epochs": 80},
    "ttrl-amc": {**_TTRL, "data": "amc", "epochs": 30},
}


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


MIN_TEMPERATURE = 1e-5  # vLLM samples greedily below this (and then refuses n > 1); both engines accept up to 2
POSITIVE, COUNT = (lambda v: v >= 1, "an integer >= 1"), (lambda v: v >= 0, "an integer >= 0")
# Every numeric flag's valid values, checked before anything loads: flag -> (test, what it must be).
RANGES = {
    "n_votes": (lambda v: v >= 2, "an integer >= 2 (a vote needs several samples)"),
    "n_train": (lambda v: v >= 2, "an integer >= 2 (GRPO needs at least 2 completions per group)"),
    "prompts_per_step": POSITIVE, "updates_per_step": POSITIVE, "micro_batch": POSITIVE, "max_tokens": POSITIVE,
    "gen_batch": POSITIVE, "judge_max_tokens": POSITIVE, "collapse_patience": POSITIVE, "cluster_k_min": POSITIVE,
    "cluster_k_max": POSITIVE,
    "tp": (lambda v: v == 1, "1: a tensor-parallel vLLM engine keeps its workers in other processes, which the weight push "
           "after every step cannot reach (several GPUs: torchrun, docs/multi-gpu.md)"),
    "video_frames": (lambda v: v is None or v >= 1, "an integer >= 1 (or left out: an embedded model's own, else 8)"),
    "video_size": (COUNT[0], "an integer >= 0 (0 = frames as stored)"),
    "max_steps": (lambda v: v is None or v >= 1, "an integer >= 1 (or left out: from --epochs)"),
    "save_every": (COUNT[0], "an integer >= 0 (0 = only final/)"), "keep_checkpoints": (COUNT[0], "an integer >= 0 (0 = all)"),
    "eval_k": (COUNT[0], "an integer >= 0 (0 = no evaluation)"), "adapt_on": (COUNT[0], "an integer >= 0 (0 = all questions)"),
    "eval_every": (COUNT[0], "an integer >= 0 (0 = before and after training only)"),
    "micro_batch_tokens": (COUNT[0], "an integer >= 0 (0 = --micro-batch rows, whatever their length)"),
    "seed": COUNT,
    "lr": (lambda v: 0 < v <= 1e36, "a number in (0, 1e36] (AdamW's first step is lr / 0.1, applied in float32)"),
    "epochs": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "weight_decay": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "grad_clip": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "max_weight_change": (lambda v: 0 <= v < math.inf, "a finite number >= 0 (0 = off)"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "temperature": (lambda v: MIN_TEMPERATURE <= v <= 2, f"in [{MIN_TEMPERATURE}, 2]: the N votes need sampling (below "
                    f"{MIN_TEMPERATURE} vLLM samples greedily: N copies of one answer; above 2 it refuses)"),
    "eval_temperature": (lambda v: MIN_TEMPERATURE <= v <= 2, f"in [{MIN_TEMPERATURE}, 2] (the greedy answer is evaluated apart)"),
    "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"), "eval_top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "eps_low": (lambda v: 0 <= v < 1, "in [0, 1)"), "eps_high": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "kl_coef": (lambda v: 0 <= v < math.inf, "a finite number >= 0"), "is_cap": (lambda v: 0 <= v < math.inf, "a finite number >= 0 (0 = off)"),
    "entropy_coef": (math.isfinite, "a finite number"),
    "vllm_kv_gib": (lambda v: 0 < v < math.inf, "a finite number > 0"), "vllm_gpu_memory": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "dist_timeout": (lambda v: 0 < v < math.inf, "a finite number of minutes > 0"),
    "collapse_entropy": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "collapse_distinct": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
}


def check_flag(ap, name: str, value, rule: tuple | None = None) -> None:
    """One flag's value against its rule (test, what it must be), RANGES[name] by default; out of
    range: one line naming the flag, the value and the range (exit 2). eval.py checks its flags here too."""
    ok, what = rule or RANGES[name]
    if not ok(value):
        ap.error(f"--{name.replace('_', '-')} {value}: must be {what}")


def check_ranges(args, ap) -> None:
    """Each numeric flag in its range, then the flags together; a bad value is one line (exit 2)."""
    for name in RANGES:
        check_flag(ap, name, getattr(args, name))
    if args.n_train > args.n_votes:
        ap.error(f"--n-train {args.n_train} > --n-votes {args.n_votes}: the trained completions are a subset of the voters")
    if args.updates_per_step > args.prompts_per_step * args.n_train:
        ap.error(f"--updates-per-step {args.updates_per_step}: more updates than the step's {args.prompts_per_step} x "
                 f"{args.n_train} trained completions (some would train on nothing)")
    if args.cluster_k_min > args.cluster_k_max:
        ap.error(f"--cluster-k-min {args.cluster_k_min} > --cluster-k-max {args.cluster_k_max}")


# ----------------------------------------------------------------------------- flags train.py and eval.py share
def add_data_flags(a) -> None:
    """Which questions, and how each becomes a prompt."""
    a("--data", default="tiny-math", help=f"tiny-math / tiny-digits / tiny-sounds / tiny-clips (embedded), a hub set "
      f"({', '.join(data.files.HUB)}) or a .jsonl/.json/.parquet/.csv file")
    a("--question-key", default="question", help="column holding the question (files)")
    a("--dedup", action="store_true", help="drop rows that repeat an earlier row's question (and media), keeping the first; "
      "without it they are kept, and counted in one line")
    a("--answer-key", default=None, help="column holding the reference answer, optional (files; default 'answer' when there is one; "
      "a worked solution's last \\boxed{} is taken): read by evaluation and monitoring only, never by training")
    a("--image-key", default=None, help="column holding each row's image(s) (files): paths relative to the file, or stored images")
    a("--audio-key", default=None, help="column holding each row's audio clip(s) (files): WAV paths relative to the file, or stored audio")
    a("--video-key", default=None, help="column holding each row's video clip (files): a video file (.mp4, .webm, ...) relative "
      "to the file, a folder of frame images, or stored frames (data/media.py)")
    a("--video-frames", type=int, default=None, help="frames sampled uniformly from each video clip, the middle frame of K equal "
      "segments (default: an embedded video model's own, tiny-clips: 4; else 8)")
    a("--video-size", type=int, default=448, help="each video frame's longer side scaled down to at most this many pixels (0 = as stored)")
    a("--answer-format", default=None, choices=["boxed", "text"], help="boxed: the \\boxed{} answer (math); text: the whole response is "
      "a free-text answer, voted on by exact normalised text (open-ended QA, OP-TTRAV); default: text for tiny-sounds and tiny-clips, else boxed")
    a("--prompt-template", default=None, help="a .txt prompt or .json chat messages with {question} (default: see data/prompts.py)")


def add_engine_flags(a) -> None:
    """The rollout engine and where it runs. eval.py's engine has the GPU to itself: it sets --vllm-gpu-memory's default to 0.85."""
    a("--engine", default="auto", choices=["auto", "vllm", "hf"], help="rollout engine: vllm, hf (transformers), auto = the faster for this model "
      "and device, by measurement (sample.auto_engine; the choice is printed)")
    a("--device", default=None, help="torch device of the policy (default: cuda if available, else cpu)")
    a("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="compute dtype of the engine and of train.py's trainer "
      "(autocast: its weights and optimizer stay float32; eval.py loads the model in it). auto: bfloat16 on a GPU; on a CPU "
      "bfloat16 only for a model of 50M+ parameters on a CPU whose bf16 matmuls measure 1.5x+ faster (config.auto_dtype)")
    a("--gen-batch", type=int, default=256, help="hf engine: sequences per generate() call")
    a("--vllm-kv-gib", type=float, default=1.0, help="vllm on CPU: KV-cache size in GiB (lower it if out of memory)")
    a("--vllm-gpu-memory", type=float, default=0.3, help="vllm on GPU: fraction of GPU memory for the engine; the trainer shares the GPU")


def add_sampling_flags(a, eval_prefix: str) -> None:
    """Completion length, the seed, and the evaluation protocol (TTRL's: k = 16 samples at T = 0.6,
    top-p 0.95, plus the greedy answer). eval_prefix: "eval-" in train.py (--eval-k, ...), "" in eval.py (--k, ...)."""
    a("--max-tokens", type=int, default=64, help="max completion tokens, rollouts and evaluation (TTRL: 3072)")
    a("--seed", type=int, default=0, help="seed for sampling (sample.step_seed), data order, torch and bootstrap intervals")
    a(f"--{eval_prefix}k", type=int, default=16, help="samples per question for avg@k / maj@k / pass@k"
      + (" (0 = skip evaluation)" if eval_prefix else ""))
    a(f"--{eval_prefix}temperature", type=float, default=0.6, help="evaluation sampling temperature (TTRL: 0.6)")
    a(f"--{eval_prefix}top-p", type=float, default=0.95, help="evaluation top-p (TTRL: 0.95)")


def add_helper_flags(a) -> None:
    """Models loaded beside the policy: the sentence encoder and the judge's reply length."""
    a("--encoder", default="minilm", help="semantic rewards (train.py) and --open-ended's embedding similarity (eval.py): minilm "
      "(packaged all-MiniLM-L6-v2), tfidf, or a sentence-transformers name/folder")
    a("--judge-max-tokens", type=int, default=8, help="max tokens of each judge reply (the judge reward; eval.py --win-rate)")


def resolve_device(args) -> None:
    """--device when not given: cuda if a GPU is visible, else cpu; --dtype auto: config.auto_dtype."""
    import torch  # the flags are fine: now the slow import

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.dtype == "auto":
        args.dtype, why = auto_dtype(args.device, args.model)
        if args.device == "cpu" and why:
            print(f"--dtype auto: {args.dtype} ({why})", flush=True)


AUTO_BF16_PARAMS, AUTO_BF16_SPEEDUP = 50e6, 1.5  # below either, float32 on a CPU


def auto_dtype(device: str, model: str | list[str]) -> tuple[str, str]:
    """(dtype, why). bfloat16 on a GPU. On a CPU bf16 matmuls run ~3x faster than float32 where the
    CPU has bf16 instructions (AVX512-BF16, AMX) and far slower where it has not: bfloat16 only for
    a model big enough for its matmuls to dominate (AUTO_BF16_PARAMS, estimated from its config) and
    when a matmul of the model's width measures AUTO_BF16_SPEEDUP times faster in bf16. The embedded
    models (0.3M-3M parameters) stay in float32 without a measurement. A train.py run folder is sized
    by the model it started from; several models (eval.py) share one dtype: bfloat16 only if each
    would take it."""
    if device != "cpu":
        return "bfloat16", ""
    if isinstance(model, list):
        picks = [auto_dtype(device, m) for m in model]
        return next((p for p in picks if p[0] == "float32"), picks[0])
    flags = Path(model) / "config.json"
    if flags.is_file() and (Path(model) / "metrics.jsonl").exists():  # a run folder: its config.json is the run's flags
        return auto_dtype(device, json.loads(flags.read_text()).get("model", "tiny-"))
    if model.startswith("tiny-"):
        return "float32", ""
    try:
        size = estimate_parameters(model)
    except Exception as e:  # no such folder, no network: the model's own loading says so next, naming the flag
        return "float32", f"could not read {model}'s config to size it: {type(e).__name__}"
    if size is None:
        return "float32", f"{model}'s config names no hidden_size / num_hidden_layers to size it by"
    if size < AUTO_BF16_PARAMS:
        return "float32", f"about {size / 1e6:.0f}M parameters: too small for bf16 to pay"
    speedup = bf16_speedup(min(model_width(model), 4096))
    dtype = "bfloat16" if speedup >= AUTO_BF16_SPEEDUP else "float32"
    return dtype, f"about {size / 1e6:.0f}M parameters; a bf16 matmul of its width ran {speedup:.1f}x float32's speed here"


def model_config(model: str) -> dict:
    """The model's config.json as a dict (a local folder, else the hub's; the text model's part of a
    multimodal config)."""
    path = Path(model) / "config.json"
    if path.exists():
        cfg = json.loads(path.read_text())
    else:
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(model).to_dict()
    return cfg.get("text_config") or cfg.get("thinker_config", {}).get("text_config") or cfg


def model_width(model: str) -> int:
    return model_config(model)["hidden_size"]


def estimate_parameters(model: str) -> float | None:
    """Parameters of a decoder from its config: per layer 2 H^2 (queries, output) + 2 H K (keys and
    values: K = H x kv heads / heads) + 3 H I (gated MLP), plus V H for the embeddings (twice when the
    head is not tied); norms and biases left out. None when the config lacks the sizes."""
    c = model_config(model)
    if not all(k in c for k in ("hidden_size", "num_hidden_layers", "vocab_size")):
        return None
    h, inner = c["hidden_size"], c.get("intermediate_size", 4 * c["hidden_size"])
    heads = c.get("num_attention_heads", 1)
    kv = h * c.get("num_key_value_heads", heads) // heads
    embeddings = c["vocab_size"] * h * (1 if c.get("tie_word_embeddings", False) else 2)
    return c["num_hidden_layers"] * (2 * h * h + 2 * h * kv + 3 * h * inner) + embeddings


def bf16_speedup(width: int, tokens: int = 512) -> float:
    """float32 time / bfloat16 time of a (tokens x width) @ (width x 4 width) matmul, best of 3 each."""
    import time

    import torch
    speed = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(tokens, width, dtype=dtype), torch.randn(width, 4 * width, dtype=dtype)
        a @ b  # warm-up
        times = []
        for _ in range(3):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        speed[dtype] = min(times)
    return speed[torch.float32] / speed[torch.bfloat16]


def parse_args(argv=None, description: str | None = None):
    """The run's flags, resolved (preset defaults, resume config, derived defaults), or a one-line error."""
    ap = OneLineParser(description=description or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--preset", default=None, choices=list(PRESETS), help="a paper recipe: sets model, data and hyper-parameters (flags given too override it)")
    a("--model", default="tiny-math", help="model folder or hub name ('tiny-math', 'tiny-digits', 'tiny-sounds', 'tiny-clips' = the embedded models, built on first use)")
    add_data_flags(a)
    add_sampling_flags(a, "eval-")
    add_engine_flags(a)
    add_helper_flags(a)
    a("--adapt-on", type=int, default=0, help="train on only this many test questions (seeded choice), evaluate on all; 0 = all (TTRV: 1, 20 or 500)")
    a("--out", default=None, help="run folder (default runs/<date-time>)")
    a("--save-every", type=int, default=10, help="write a checkpoint (model, optimizer, RNG, data order) every N steps and after the last; 0 = only final/")
    a("--keep-checkpoints", type=int, default=5, help="model copies to keep in checkpoints/ (0 = all, at least 2); only the newest two keep the optimizer state")
    a("--resume", default=None, metavar="RUN_DIR", help="continue a run from its newest intact checkpoint, with its config.json (see checkpoint.py)")
    a("--start-over", action="store_true", help="--out names a folder holding an earlier run: move that run's files aside "
      "(to OUT.previous-<time>/, nothing is deleted) and start a new run there")
    a("--restart", action="store_true", help="with --resume: when no checkpoint is intact, start the run over from step 0 "
      "(the damaged ones are kept, renamed *.damaged)")
    # TTRL
    a("--n-votes", type=int, default=16, help="N: completions sampled per question, all of them vote")
    a("--n-train", type=int, default=8, help="M <= N: completions per question used in the GRPO loss")
    a("--prompts-per-step", type=int, default=8, help="questions per step")
    a("--epochs", type=float, default=3, help="passes over the test questions")
    a("--max-steps", type=int, default=None, help="stop after this many steps (default: from --epochs)")
    a("--reward", default="majority", choices=list(REWARDS), help="majority: 1 if the answer equals the vote (TTRL); frequency: share of votes (TTRV); "
      "centroid / cluster / cluster-continuous / judge: OP-TTRAV's semantic rewards (rewards.py, docs/rewards.md); "
      "truth: a BASELINE that reads the true answers (RL on them, the paper's upper bound), not test-time RL")
    a("--centroid-anchor", default="medoid", choices=["medoid", "centroid"], help="centroid reward: cosine to the medoid answer (OP-TTRAV) or to the mean direction")
    a("--cluster-k-min", type=int, default=2, help="cluster rewards: smallest K tried by KMeans (K = 1 when every answer agrees)")
    a("--cluster-k-max", type=int, default=4, help="cluster rewards: largest K tried (chosen by cosine silhouette)")
    a("--judge-model", default=None, help="judge reward: model that scores answers 0-10 (default: the policy itself, through its engine)")
    a("--entropy-coef", type=float, default=0.0, help="TTRV entropy term weight (0 = off); see rewards.py")
    a("--entropy-form", default="per-sample", choices=["per-sample", "literal"], help="per-sample: coef*log p(answer), survives group normalisation; literal: -coef*H, cancels (TTRV's code)")
    a("--temperature", type=float, default=1.0, help="rollout sampling temperature (TTRL: 1.0)")
    a("--top-p", type=float, default=1.0, help="rollout nucleus top-p (1.0 keeps the ratio unbiased)")
    a("--mask-truncated", action="store_true", help="leave completions that hit --max-tokens out of the loss (they still vote)")
    # GRPO
    a("--lr", type=float, default=5e-5, help="AdamW learning rate (tiny-math: 5e-5, 2e-4 collapses; TTRL on Qwen2.5-Math: 5e-7)")
    a("--lr-schedule", default="constant", choices=["constant", "cosine"], help="after warm-up: constant or cosine to 0")
    a("--warmup-ratio", type=float, default=0.0, help="fraction of steps with linear LR warm-up (TTRL: 0.03)")
    a("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    a("--grad-clip", type=float, default=1.0, help="max gradient norm")
    a("--max-weight-change", type=float, default=0.01, help="stop the run when one update changes the weights' global norm "
      "by more than this fraction (a wrecking learning rate: tiny-math at lr 1e-2 moves it 1.4%%, at 5e-5 0.0005%%); 0 = off")
    a("--updates-per-step", type=int, default=1, help="optimizer updates per rollout batch (mini-batches; >1 makes the ratio != 1)")
    a("--micro-batch", type=int, default=64, help="completions per forward/backward (gradient accumulation; lower it if out of memory). "
      "Completions are sorted by length first, and each micro-batch is padded to its own longest only")
    a("--micro-batch-tokens", type=int, default=0, help="also cap a micro-batch at this many tokens (rows x its longest row), "
      "so short completions go many to a pass and long ones few (verl's dynamic batch size); 0 = rows only")
    a("--grad-checkpointing", action="store_true", help="recompute activations during backward: much less memory for long responses, ~30%% more train time")
    a("--fsdp", action="store_true", help="under torchrun: shard weights, gradients and AdamW state over the ranks (FSDP2) instead of a full replica per rank (DDP)")
    a("--adv-scale", default="group", choices=["group", "batch", "none"], help="advantage std: per group (GRPO), batch, or none (Dr. GRPO)")
    a("--loss-agg", default="token-mean", choices=["token-mean", "seq-mean-token-mean"], help="how token losses are averaged")
    a("--eps-low", type=float, default=0.2, help="PPO clip: ratio floor 1 - eps_low")
    a("--eps-high", type=float, default=0.2, help="PPO clip: ratio ceiling 1 + eps_high (DAPO: 0.28)")
    a("--kl-coef", type=float, default=0.0, help="beta for the k3 KL to the start model (0 = no reference model; TTRL: 0.001)")
    a("--is-cap", type=float, default=2.0, help="truncated importance sampling: weight tokens by min(p_trainer / p_sampler, cap); 0 = off")
    # engine + evaluation
    a("--tp", type=int, default=1, help="vllm tensor-parallel size: only 1 is supported (a tensor-parallel engine's workers live in "
      "other processes, out of the weight push's reach; docs/multi-gpu.md)")
    a("--vllm-sleep", type=int, default=0, choices=[0, 1, 2], help="vllm on GPU: free the engine's KV cache (1) and its weights (2) "
      "during each update, for the trainer's memory; 0 = off")
    a("--dist-timeout", type=float, default=60.0, help="torchrun: minutes a rank waits for the others (rank 0 writing a large "
      "checkpoint, say) before the run fails")
    a("--log-groups", action="store_true", help="write each step's groups to groups.jsonl: the N answers, the pseudo-label, "
      "each reward (and the true answer where there is one, for reading): what the vote looked like")
    a("--eval-every", type=int, default=0, help="also evaluate every K steps during training (as --eval-k): eval_steps.jsonl and "
      "curves.png's accuracy panel; 0 = before and after training only")
    a("--report-to", nargs="+", default=["none"], choices=["none", "tensorboard", "wandb"], help="also send every metric, "
      "evaluation and the flags to TensorBoard (OUT/tensorboard/) and / or Weights & Biases (OUT/wandb/; offline without a "
      "login), under metrics.jsonl's names (tracking.py, docs/tracking.md); none = the run folder only")
    # collapse monitor (TTRV's long runs collapsed): warn when a signal stays under its floor
    a("--collapse-entropy", type=float, default=0.01, help="warn when the mean token entropy stays below this")
    a("--collapse-distinct", type=float, default=1.1, help="warn when the mean number of distinct answers per question stays below this")
    a("--collapse-patience", type=int, default=5, help="consecutive steps under a floor before the warning")
    preset = OneLineParser(add_help=False)
    preset.add_argument("--preset", default=None, choices=list(PRESETS))
    name = preset.parse_known_args(argv)[0].preset
    if name:
        ap.set_defaults(**PRESETS[name])
    args = ap.parse_args(argv)
    if args.start_over and args.resume:
        ap.error("--start-over starts a new run in --out's folder; --resume continues the run there: give one of them")
    if args.resume:
        # Which flags were typed? Those that overwrite a sentinel-filled namespace.
        unset = object()
        probe = ap.parse_args(argv, namespace=argparse.Namespace(**{k: unset for k in vars(args)}))
        given = {k: v for k, v in vars(probe).items() if v is not unset}
        import checkpoint
        args = argparse.Namespace(**checkpoint.resume_config(args.resume, given, vars(args)))
    if args.data is None:
        what = "prompts (a question column; no answers needed)" if name == "ttrl-instruct" else "an audio and / or a video column (--audio-key, --video-key)"
        ap.error(f"--preset {name} needs --data: a .jsonl/.json/.parquet/.csv file with {what}")
    check_ranges(args, ap)
    check_trackers(args, ap)
    if args.restart and not args.resume:
        ap.error("--restart goes with --resume RUN_DIR (it starts that run over when no checkpoint of it is intact)")
    if args.judge_model and args.reward != "judge":
        ap.error(f"--judge-model is the judge reward's model: pass --reward judge with it (got --reward {args.reward})")
    if args.encoder not in ("minilm", "tfidf") and "/" not in args.encoder and not Path(args.encoder).is_dir():
        ap.error(f"--encoder {args.encoder!r}: choose minilm, tfidf, or a sentence-transformers hub name / folder")
    from data.tasks import answer_format

    resolve_device(args)
    args.answer_format = answer_format(args.data, args.answer_format)
    return args


def check_trackers(args, ap) -> None:
    """--report-to: "none" alone or trackers alone (kept as a list, [] for none), each one's package installed
    (they are optional: requirements-track.txt), checked without importing them."""
    import importlib.util

    if "none" in args.report_to and len(args.report_to) > 1:
        ap.error(f"--report-to {' '.join(args.report_to)}: none means no tracker; name the trackers alone")
    args.report_to = [t for t in dict.fromkeys(args.report_to) if t != "none"]
    missing = [t for t in args.report_to if importlib.util.find_spec(t) is None]
    if missing:
        ap.error(f"--report-to {' '.join(missing)}: not installed; pip install -r requirements-track.txt")


def check_distributed(args, launched: bool, world: int) -> None:
    """Flags that need torchrun, or do not go with it (one-line errors)."""
    if args.fsdp and not launched:
        raise SystemExit("--fsdp shards the trainer over torchrun's processes: "
                         "start with torchrun --nproc_per_node K train.py ... --fsdp")
    if args.fsdp and args.micro_batch_tokens:
        raise SystemExit("--micro-batch-tokens does not go with --fsdp: the ranks' micro-batch counts would differ, and FSDP's "
                         "every forward pass gathers weights from all ranks (they would wait on each other); use --micro-batch")
