"""Test-time RL (TTRL): improve a model on unlabeled test questions with majority-vote rewards + GRPO.

    python train.py                                        # embedded tiny-math model, CPU, a few minutes
    python train.py --max-steps 2 --eval-k 4               # a smoke test
    python train.py --preset tiny-digits                   # TTRV on images (docs/images.md)
    python train.py --preset tiny-sounds --reward cluster  # OP-TTRAV on audio, free-text answers (docs/audio.md)
    python train.py --preset tiny-clips                    # OP-TTRAV on video clips (docs/video.md)
    python train.py --preset ttrl-math500                  # the TTRL paper's MATH-500 recipe (GPU; docs/paper.md)

Read main(), then ttrl_step(), which follows the numbered algorithm of README.md:
  1. sample     N = --n-votes completions for each of the step's B = --prompts-per-step questions
  2. reward     extract each answer; the group votes; REWARDS[--reward] turns the answers into rewards
  3. advantage  the first M = --n-train completions of each question; group-normalised advantages
  4. loss       clipped GRPO surrogate (+ k3 KL to the frozen start model) on the completion tokens
  5. step       AdamW, gradient clipping, LR schedule
  6. sync       the rollout engine (vLLM, or transformers generate: --engine auto) gets the new weights
  7. log        one line per step (monitor.py: the true answers are read there, for monitoring only)
Below the algorithm: setup and the run folder (--out: metrics.jsonl, evaluations before and after,
checkpoints, final/; --resume continues a killed run: docs/long-runs.md). torchrun runs K copies
(docs/multi-gpu.md): the few lines that differ call dist.py, whose helpers do nothing in one process.
Weights and AdamW state stay float32; --dtype bfloat16 is autocast (why: docs/gpu.md).
"""
if __name__ == "__main__":  # a bad flag is one line and exit 2 before the imports below take seconds
    import sys

    from config import parse_args
    parse_args(sys.argv[1:], __doc__)

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.utils.checkpoint
from tqdm import tqdm

import card
import checkpoint
import data.files
import data.prompts
import data.tasks
import dist
import grpo
import tracking
from config import check_distributed, parse_args
from encoders import load_encoder
from eval import format_summary, question_records, summarize, votes_changed
from monitor import CollapseMonitor, group_lines, jsonable, plot_curves, read_steps, step_metrics
from answers import extract, majority_vote
from rewards import REWARDS, USES_ENCODER, RewardContext
from sample import cat_mm, context_length, drop_too_long, greedy_replies, load_policy, load_processor, make_engine, step_seed


def main(argv=None):
    args = parse_args(argv, __doc__)  # every flag: config.py
    # Ctrl-C, SIGTERM, SIGHUP: finish the step, checkpoint it, say how to resume; torchrun: a lost rank stops the rest
    with checkpoint.Signals() as stop, dist.stop_when_a_rank_is_lost(stop.where):
        run = setup(args)  # the questions, the policy and its rollout engine, the reward settings
        stop.out = run.out
        before = evaluate_run(run, "before")  # eval.py's metrics (the true answers are read there, and in the log)
        setup_training(run)  # run.learner: the policy, AdamW, LR schedule, frozen KL reference; a resumed run's state
        tracker = tracking.start(args, run.out, run.start, before)  # --report-to: TensorBoard / W&B (rank 0); else nothing
        collapse = CollapseMonitor(args.collapse_entropy, args.collapse_distinct, args.collapse_patience,
                                   history=read_steps(run.out))  # resumed: the streak as it stood at the checkpoint
        learner = run.learner
        learner.model.train()
        for step in tqdm(range(run.start, run.total_steps), desc="TTRL", unit="step", initial=run.start,
                         total=run.total_steps, disable=None if dist.is_main() else True):
            stop.stepping = True  # a signal now lets the step finish (checkpoint.Signals)
            questions = next_questions(run)  # indices into run.rows (torchrun: this rank's share of the step)
            rows, prompts = [run.rows[i] for i in questions], [run.prompts[i] for i in questions]
            lr = learner.sched.get_last_lr()[0]  # the learning rate of this step's update (ttrl_step moves the schedule on)
            truths = [r["answer"] for r in rows]  # read by the log (step 7) and by the --reward truth baseline only
            result = ttrl_step(learner, prompts, [r["question"] for r in rows], args, step_seed(args.seed, step),
                               truths if args.reward == "truth" else None)
            run.nonfinite_skips += result["stats"]["nonfinite"]
            metrics = step_metrics(result, truths, run.checker, args, step=step + 1, epoch=(step + 1) / run.steps_per_epoch,
                                   lr=lr, nonfinite_skips=run.nonfinite_skips)
            metrics["collapse_warning"] = collapse.check(metrics)
            write_step(run, metrics, group_lines(result, questions, truths, step + 1) if args.log_groups else [])
            tracker.log(metrics)
            stop.done = metrics["step"]
            check_update(run, metrics)  # a wrecking update stops the run before a checkpoint keeps its weights
            if args.eval_every and metrics["step"] % args.eval_every == 0 and metrics["step"] < run.total_steps:
                tracker.log_eval("during", evaluate_run(run, "during", step=metrics["step"]), metrics["step"])  # eval_steps.jsonl
            checkpoint_if_due(run, stop, metrics["step"])  # every --save-every steps, the last, and before a signal's stop
        stop.stepping = False
        if stop.signum:  # came after the last step's checkpoint_if_due
            raise checkpoint.Stopped()
        write_final(run, before)  # final/: the trained weights, before the evaluation, so no late signal loses them
        after = evaluate_run(run, "after")
        tracker.log_eval("after", after, run.total_steps)
        finish(run, before, after)  # final/'s model card with the evaluation, curves.png, the before/after table
        tracker.close()
    return run.out


# ----------------------------------------------------------------------------- the algorithm
def ttrl_step(learner: "Learner", prompts: list[dict], questions: list[str], args, seed: int,
              truths: list[str] | None = None) -> dict:
    """One TTRL step (steps 1-6) on B questions: their prompts (data/prompts.py) and their texts (the
    judge reward shows them); `seed` seeds the sampling (sample.py: step_seed); `truths`, the true
    answers, only for the --reward truth baseline. Returns what the log (step 7, monitor.step_metrics)
    reads: the groups, answers, votes, pseudo-labels, rewards (B, N), the trained batch, the policy's
    log-probs and token entropy before the update (B*M, T), the update's numbers, each phase's seconds."""
    engine, par, clock = learner.engine, learner.par, Clock()

    # 1. sample: N completions per question, each token with the sampler's log-prob
    groups = engine.generate(prompts, n=args.n_votes, temperature=args.temperature, top_p=args.top_p,
                             max_tokens=args.max_tokens, seed=seed, positions=par.positions)
    clock.lap("sample")

    # 2. reward: every completion's answer; each group's majority vote (TTRL's pseudo-label, logged in
    # every mode); the reward mode turns the answers into rewards without reading a true answer (but
    # --reward truth, a baseline to compare against: it alone is handed them)
    answers = [[extract(r.text, args.answer_format) for r in g] for g in groups]  # B lists of N (str or None)
    votes = [majority_vote(a, exact=args.answer_format == "text") for a in answers]
    context = RewardContext(votes, questions, truths=truths, **learner.reward_settings)
    rewards, labels = REWARDS[args.reward](answers, context)  # (B, N), B labels
    rewards = torch.tensor(np.stack(par.gather(list(rewards))), dtype=torch.float32, device=args.device)  # (B, N)
    clock.lap("reward")

    # 3. advantage: the first M completions of each group are trained (samples are i.i.d., so the
    # first M are a uniform subset; all N voted)
    advantages = grpo.group_advantages(rewards[:, :args.n_train], args.adv_scale)  # (B, M)
    batch = make_experience(groups, par.mine(advantages), learner, args)  # (B*M, T)

    # 4-5. loss and AdamW update(s), unless the step has nothing to teach: AdamW would still move the
    # weights on a zero gradient (momentum, weight decay), so then there is no update at all
    engine.sleep()  # --vllm-sleep: the engine lends its memory to the update until step 6 (else no-op)
    if has_signal(advantages, batch, par):
        stats, logp, entropy = update_policy(learner.model, learner.opt, batch, args, par)
    else:  # the log still reads the policy's log-probs and entropy
        stats, (logp, entropy) = dict(NO_UPDATE), no_grad_logprobs(learner.model, batch, args, entropy=True)
    learner.sched.step()  # the schedule counts steps, updated or not
    clock.lap("train")

    # 6. sync: the engine samples the next step from the new weights
    par.push_weights(engine, learner.model)
    clock.lap("sync")
    return dict(groups=groups, answers=answers, votes=votes, labels=labels, rewards=rewards, batch=batch,
                logp=logp, entropy=entropy, stats=stats, times=clock.laps)


@dataclass
class Learner:
    """What a step works with (setup_training builds it)."""

    model: torch.nn.Module  # the policy the loss backpropagates through, float32 weights (torchrun: its DDP / FSDP form)
    opt: torch.optim.Optimizer  # AdamW over the policy's parameters
    sched: object  # the learning-rate schedule (lr_lambda), one step per TTRL step
    engine: object  # samples the rollouts (sample.py): HFEngine (the policy itself) or VLLMEngine (a copy, synced)
    pad_id: int  # the tokenizer's padding token (collate)
    reward_settings: dict  # RewardContext's fields that stay fixed over a run: encoder, judge, settings (rewards.py)
    ref: torch.nn.Module | None = None  # the frozen start model for the KL term (None when --kl-coef 0)
    par: object = field(default_factory=lambda: OneProcess())  # the other processes: none (torchrun: dist.Ranks)


class OneProcess:
    """How a step meets the other processes of a run: in one process, not at all, so each method hands
    its input back. Under torchrun, dist.Ranks has the same methods with collectives behind them."""

    positions = None  # the engine's seeds by place in the step: one process seeds per call (sample.py)

    def gather(self, groups: list) -> list:
        return groups  # every process's groups of the step, in step order

    def mine(self, rows: torch.Tensor) -> torch.Tensor:
        return rows  # this process's rows of the step's B questions

    def sum(self, x):
        return x  # summed over the processes

    def mean(self, x):
        return x  # averaged over the processes

    def grad_sync(self, model, last: bool):
        return contextlib.nullcontext()  # DDP / FSDP: sync the gradients in the last micro-batch's backward only

    def clip_grad_norm(self, model, max_norm: float) -> float:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))

    def weight_norm(self, model) -> float:
        """The global L2 norm of the weights (check_update's guard)."""
        return float(torch.nn.utils.get_total_norm([p.detach() for p in model.parameters()]))

    def push_weights(self, engine, model) -> None:
        engine.sync(model)  # the hf engine samples from `model` itself; vLLM gets the weights copied in


def make_experience(groups, advantages: torch.Tensor, learner: Learner, args) -> grpo.Experience:
    """Step 4's batch: the first M completions of each group (B*M rows) with their advantages (B, M)
    and, with the KL term, the frozen reference's log-probs. The old policy's log-probs, which the
    ratio compares against, are update_policy's business."""
    trained = [r for g in groups for r in g[:args.n_train]]
    batch = collate(trained, learner.pad_id).to(args.device)
    batch.advantages = advantages.flatten()  # (B*M,)
    if args.mask_truncated:  # a cut-off completion never reached its answer: keep it out of the loss
        truncated = torch.tensor([r.truncated for r in trained], device=args.device)  # (B*M,)
        batch.mask = batch.mask * ~truncated[:, None]  # (B*M, T)
    if learner.ref is not None:
        batch.ref_logp = no_grad_logprobs(learner.ref, batch, args)
    return batch


def collate(rollouts, pad_id: int) -> grpo.Experience:
    """Prompt + completion per row, right-padded to L tokens; T = L - 1 targets (the token at t + 1,
    predicted by the logits at t), masked to the completion, with the sampler's log-probs."""
    seqs = [r.prompt_ids + r.ids for r in rollouts]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id)  # (B*M, L)
    mask = torch.zeros(len(seqs), width - 1)  # (B*M, T): 1 where the target is a completion token
    sampler_logp = torch.zeros(len(seqs), width - 1)  # (B*M, T)
    for i, (r, s) in enumerate(zip(rollouts, seqs)):
        ids[i, :len(s)] = torch.tensor(s)
        p, c = len(r.prompt_ids), len(r.ids)
        mask[i, p - 1:p - 1 + c] = 1
        sampler_logp[i, p - 1:p - 1 + c] = torch.tensor(r.logprobs)
    attention = (torch.arange(width) < torch.tensor([len(s) for s in seqs])[:, None]).long()  # (B*M, L)
    media = [r.mm for r in rollouts] if rollouts[0].mm else []  # image / audio prompts: their processor tensors
    return grpo.Experience(ids, attention, mask, sampler_logp, media=media)


def sequence_logprobs(model, batch: grpo.Experience, temperature: float, dtype: str = "float32", entropy: bool = False):
    """Log-probs of each completion token (B*M, T), 0 at the other positions, and with entropy=True
    also the sampling distribution's entropy there (B*M, T), computed without gradient (it is only
    logged). dtype bfloat16: the forward runs under autocast (float32 weights); the log-softmax is
    float32 either way. Models whose head can be applied apart (lm_head: the embedded text models,
    Qwen, Llama) take chunked_logprobs instead: the same numbers without the (B*M, T, V) logits."""
    head = lm_head(model)
    if head is not None:
        return chunked_logprobs(model, head, batch, temperature, dtype, entropy)
    media = cat_mm(batch.media, batch.input_ids.device)  # e.g. pixel_values (B*M, 3, H, W)
    with torch.autocast(batch.input_ids.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **media).logits[:, :-1]  # (B*M, T, V)
    logp = grpo.token_logprobs(logits, batch.targets, temperature) * batch.mask  # (B*M, T)
    if not entropy:
        return logp
    with torch.no_grad():
        return logp, grpo.token_entropy(logits, temperature) * batch.mask


HEAD_CHUNK = 512  # completion tokens per lm-head chunk: at Qwen's 151,936 words, 311 MB of float32 logits per copy


def lm_head(model):
    """The output layer when the logits are exactly head(the last hidden state), else None. Then the
    log-prob pass applies it itself, chunk by chunk (chunked_logprobs). None for FSDP (the head's
    weights are sharded outside the forward pass) and for model types not known to be that simple
    (the Omni thinker, LLaVA-style wrappers: their forward is used whole)."""
    if dist.is_fsdp(model) or dist.unwrap(model).config.model_type not in ("qwen2", "qwen3", "llama", "mistral"):
        return None
    return dist.unwrap(model).get_output_embeddings()


def chunked_logprobs(model, head, batch: grpo.Experience, temperature: float, dtype: str, entropy: bool):
    """sequence_logprobs for a text model whose logits are head(last hidden state), without ever
    holding the logits of the micro-batch: the forward stops at the hidden states (it computes the
    logits of one position only), and the head runs on the completion positions alone, HEAD_CHUNK at
    a time; with several chunks each is recomputed during backward (chunk_logprobs), so the memory of
    this pass no longer grows with L x V (docs/performance.md, "Padding and the logits")."""
    device = batch.input_ids.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1][:, :-1]  # (B*M, T, H) after the final norm
    where = batch.mask.bool()  # (B*M, T)
    h, y = hidden[where], batch.targets[where]  # (K, H), (K,): the K completion tokens
    recompute = len(y) > HEAD_CHUNK  # one chunk: keeping its logits for backward costs no more than recomputing
    chunks = [chunk_logprobs(head, h[s:s + HEAD_CHUNK], y[s:s + HEAD_CHUNK], temperature, dtype, entropy, recompute)
              for s in range(0, max(len(y), 1), HEAD_CHUNK)]  # K = 0 (every completion masked): one empty chunk
    logp = torch.zeros(batch.mask.shape, device=device).masked_scatter(where, torch.cat([lp for lp, _ in chunks]))  # (B*M, T)
    if not entropy:
        return logp
    return logp, torch.zeros(batch.mask.shape, device=device).masked_scatter(where, torch.cat([e for _, e in chunks]))


def chunk_logprobs(head, h: torch.Tensor, y: torch.Tensor, temperature: float, dtype: str, entropy: bool, recompute: bool):
    """(log-probs (C,), entropy (C,) or None) of C tokens y from their hidden states h (C, H). With
    gradient and recompute, under a checkpoint: only h is kept for backward, and the (C, V) logits are
    computed again there (one more head matmul: the price of never holding two chunks' logits)."""
    def run(h):
        with torch.autocast(h.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = head(h)[None]  # (1, C, V)
        with torch.no_grad():
            ent = grpo.token_entropy(logits, temperature)[0] if entropy else None  # (C,)
        return grpo.token_logprobs(logits, y[None], temperature)[0], ent
    if not (recompute and torch.is_grad_enabled()):
        return run(h)
    return torch.utils.checkpoint.checkpoint(run, h, use_reentrant=False)


def place(parts, like: torch.Tensor) -> torch.Tensor:
    """Per-row results of micro-batches, (indices, (rows, T')) pairs, back in a (B*M, T) tensor like
    `like`, in the batch's row order (a micro-batch's T' <= T: it was cut to its longest row)."""
    out = torch.zeros_like(like)
    for index, x in parts:
        out[index, :x.shape[1]] = x
    return out


def no_grad_logprobs(model, batch: grpo.Experience, args, entropy: bool = False):
    """sequence_logprobs without gradient, micro-batch by micro-batch (Experience.micro_batches)."""
    parts = []
    with torch.no_grad():
        for index, mb in batch.micro_batches(args.micro_batch, args.micro_batch_tokens):
            out = sequence_logprobs(model, mb, args.temperature, args.dtype, entropy)
            parts.append((index, out if entropy else (out,)))
    logp = place([(i, p[0]) for i, p in parts], batch.mask)  # (B*M, T)
    return (logp, place([(i, p[1]) for i, p in parts], batch.mask)) if entropy else logp


def update_policy(model, opt, batch: grpo.Experience, args, par=None) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
    """Steps 4-5: U = --updates-per-step AdamW updates, each on a mini-batch (1/U of the rows), each
    mini-batch split into micro-batches whose gradients add up to the gradient of the mini-batch's loss.
    The old policy's log-probs (the ratio's denominator): batch.old_logp if given; else, with U = 1, the
    update's own forward pass (the policy has not moved yet: as TRL does, no extra pass), and with
    U > 1 one no-gradient pass before the first update. Returns the update's numbers, and the old
    log-probs with the token entropy (B*M, T) for the log (the entropy is None when old_logp was given).
    par: the other processes (torchrun); in one process, none.
    Guards: an update whose loss or gradient norm is NaN/inf is not applied (counted in "nonfinite");
    "weight_change", the largest |norm(weights after) / norm(weights before) - 1| of the step's updates,
    is how far the weights moved (not finite: they did; check_update stops a run that went too far)."""
    par = par or OneProcess()
    U, rows, entropy = args.updates_per_step, len(batch), None
    if batch.old_logp is None and U > 1:  # the first update moves the policy: the old log-probs first
        old_logp, entropy = no_grad_logprobs(model, batch, args, entropy=True)
        batch = dataclasses.replace(batch, old_logp=old_logp)
    # --loss-agg's denominator: tokens (token-mean) or completions (seq-mean-token-mean)
    size = (lambda b: b.mask.sum()) if args.loss_agg == "token-mean" else (lambda b: float(len(b)))
    stats = {"loss": 0.0, "clip_frac": [], "kl": [], "grad_norm": [], "nonfinite": 0, "weight_change": 0.0}
    norm_before = par.weight_norm(model)
    first_pass = []  # U = 1, no old_logp given: (row indices, log-probs, entropy) of each micro-batch as the policy saw it
    for u in range(U):
        start = u * rows // U
        mini = batch.rows(start, (u + 1) * rows // U)
        # Each micro-batch's loss weighs its share of the mini-batch's denominator, so the weighted sum
        # is the mini-batch's loss. torchrun: the denominator averaged over the processes, as DDP / FSDP
        # average their gradients (docs/multi-gpu.md).
        denominator = par.mean(size(mini))
        opt.zero_grad(set_to_none=True)
        mini_loss = 0.0
        micro = mini.micro_batches(args.micro_batch, args.micro_batch_tokens)  # sorted by length, each cut to its longest
        for j, (index, mb) in enumerate(micro):
            with par.grad_sync(model, j == len(micro) - 1):
                if mb.old_logp is None:  # the policy that sampled is this one: ratio 1, gradient A * grad(logp)
                    logp, mb_entropy = sequence_logprobs(model, mb, args.temperature, args.dtype, entropy=True)
                    mb = dataclasses.replace(mb, old_logp=logp.detach())  # (micro-batch rows, T')
                    first_pass.append(([start + i for i in index], mb.old_logp, mb_entropy))
                else:
                    logp = sequence_logprobs(model, mb, args.temperature, args.dtype)  # (micro-batch rows, T)
                loss, loss_stats = grpo.policy_loss(logp, mb, eps_low=args.eps_low, eps_high=args.eps_high,
                                                    kl_coef=args.kl_coef, agg=args.loss_agg, is_cap=args.is_cap)
                share = float(size(mb) / denominator)
                (loss * share).backward()
            mini_loss += loss.item() * share
            stats["clip_frac"].append(loss_stats["clip_frac"])
            stats["kl"].append(loss_stats.get("kl", 0.0))
        mini_loss = par.mean(mini_loss)  # torchrun: NaN on any process -> every process skips alike
        norm = par.clip_grad_norm(model, args.grad_clip)
        if not (math.isfinite(norm) and math.isfinite(mini_loss)):
            opt.zero_grad(set_to_none=True)  # the weights and AdamW's moments stay as they were
            stats["nonfinite"] += 1
            continue
        stats["loss"] += mini_loss / U
        stats["grad_norm"].append(norm)
        opt.step()
        norm_after = par.weight_norm(model)
        change = abs(norm_after / norm_before - 1)
        if not change <= stats["weight_change"]:  # the largest so far, or NaN (weights no longer finite)
            stats["weight_change"] = change
        norm_before = norm_after
    if first_pass:
        old_logp = place([(index, lp) for index, lp, _ in first_pass], batch.mask)  # (B*M, T)
        entropy = place([(index, e) for index, _, e in first_pass], batch.mask)
    else:
        old_logp = batch.old_logp
    stats = {k: v if k in ("loss", "nonfinite", "weight_change") else float(np.mean(v)) if v else 0.0 for k, v in stats.items()}
    return {**stats, "update": "nonfinite" if stats["nonfinite"] else "ok"}, old_logp, entropy


NO_UPDATE = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "grad_norm": 0.0, "nonfinite": 0, "weight_change": 0.0,
             "update": "no-signal"}


def has_signal(advantages: torch.Tensor, batch: grpo.Experience, par=None) -> bool:
    """False when nothing can be learned, because every advantage is 0 (each group unanimous) or
    every trained token is masked. torchrun: decided on every process's tokens together."""
    return not ((advantages == 0).all() or (par or OneProcess()).sum(batch.mask.sum()) == 0)


class Clock:
    """Seconds per phase of a step: laps["t_sample"], ... (logged as t_sample, t_reward, t_train, t_sync)."""

    def __init__(self):
        self.last, self.laps = time.time(), {}

    def lap(self, phase: str) -> None:
        now = time.time()
        self.laps[f"t_{phase}"], self.last = now - self.last, now


# ----------------------------------------------------------------------------- setup and the run folder
@dataclass
class Run:
    """The run: what setup() and setup_training() build; main() and the run-folder helpers read it."""

    args: object  # the resolved flags (config.py), saved as config.json
    out: Path  # the run folder (written by rank 0 alone)
    rows: list  # {"question", "answer", media}: answers are read by evaluation and the log only
    prompts: list  # one prompt dict per row, in the model's format (data/prompts.py)
    checker: object  # (answer, truth) -> right?, for evaluation and monitoring (data.tasks.checker)
    model: torch.nn.Module  # the policy: float32 master weights
    tok: object
    engine: object  # the rollout engine (sample.py): HFEngine or VLLMEngine
    judge_engine: object  # the engine the judge mode asks (the policy's own unless --judge-model)
    reward_settings: dict  # RewardContext's fields that stay fixed over a run (rewards.py)
    tokenizer_or_processor: object  # saved beside the weights (a processor: tokenizer + image / audio pipeline)
    markers: list  # the embedded models' marker files, copied into every checkpoint (data/tasks.py)
    model_path: str  # the start model (the KL reference)
    resume_from: Path | None  # the checkpoint a --resume run starts from
    engine_model: torch.nn.Module | None = None  # --fsdp with the hf engine: the engine's own full copy
    lock: object = None  # the run folder's lock file (rank 0), held open for the whole run (checkpoint.claim)
    pool: list = field(default_factory=list)  # the questions trained on (all, or --adapt-on of them)
    per_step: int = 0  # B
    my_share: list = field(default_factory=list)  # this rank's places in each step's B questions (all of them in one process)
    # set by setup_training:
    learner: Learner | None = None  # what a step works with: the policy (torchrun: wrapped), AdamW, schedule, engine, ...
    start: int = 0  # steps done before (a resumed run)
    total_steps: int = 0
    steps_per_epoch: int = 0
    order: list = field(default_factory=list)  # the rest of the current shuffled pass over `pool`
    log: object = None  # metrics.jsonl, open for appending (rank 0)
    nonfinite_skips: int = 0


def setup(args) -> Run:
    dist.init(args.device, args.dist_timeout)  # torchrun: join the process group (one process: nothing)
    check_distributed(args, dist.launched, dist.world)
    # rank 0's clock and pid name it: two runs started in the same second get two folders
    out = Path(dist.broadcast(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
    if not args.resume and Path(args.data).expanduser().is_file():  # recorded resolved: --resume works from any directory
        args.data = str(Path(args.data).expanduser().resolve())
    # every check before anything is written in the run folder: the data, the prompt, the model's path
    rows = data.files.rows_for(args, args.model)
    if args.reward == "truth" and any(r["answer"] is None for r in rows):
        raise SystemExit(f"--reward truth is a baseline that trains on the true answers: {sum(r['answer'] is None for r in rows)} "
                         f"of the {len(rows)} questions of --data {args.data} have none (test-time RL needs none: --reward majority)")
    template = data.prompts.load_template(args.prompt_template)
    with dist.main_first():  # one process builds an embedded model into the cache, the others load it
        model_path = data.tasks.resolve_model(args.model)
    # one train.py per run folder, and never over an earlier run (checkpoint.claim); rank 0 holds the lock
    lock = dist.on_main(checkpoint.claim, out, bool(args.resume), args.start_over)
    resume_from = resume_point(out, args) if args.resume else None
    policy_path = str(resume_from or model_path)  # the policy (and its engine) start from the checkpoint
    model, tok = load_policy(policy_path, "float32", args.device)  # float32 master weights (module docstring)
    processor = load_processor(model)  # a multimodal model's image / audio pipeline, else None
    if args.grad_checkpointing:  # active in train mode only; the engines generate in eval mode
        model.gradient_checkpointing_enable()
    prompts = data.prompts.make_prompts(rows, tok, model_path, args.model, template, processor, args.answer_format)
    rows, prompts = drop_too_long(rows, prompts, tok, processor, context_length(model), args, say=dist.print0)
    data.prompts.report_lost_characters(rows, tok, model_path, args.model, say=dist.print0)  # the embedded tokenizers' few characters
    fingerprint = checkpoint.data_fingerprint(args.data, [r["question"] for r in rows])  # data.json
    if args.resume:
        checkpoint.check_data(out, fingerprint)  # the data file as it was when the run started
    settings = dict(seed=args.seed, kv_cache_gib=args.vllm_kv_gib, gpu_memory_utilization=args.vllm_gpu_memory,
                    torchrun=dist.launched, sleep_level=args.vllm_sleep)
    engine = make_engine(args.engine, model, tok, policy_path, args.dtype, args.gen_batch, processor, **settings)
    engine_model = None
    # --fsdp shards `model` in place, and a sharded module cannot generate on one rank alone (each
    # forward gathers layers from all ranks): the hf engine then samples from its own full copy
    if args.fsdp and engine.name == "hf":
        engine_model = copy.deepcopy(model)
        engine.sync(engine_model)
    embed = load_encoder(args.encoder).encode if args.reward in USES_ENCODER else None
    judge_engine, judge_policy = engine, model
    if args.judge_model:  # a separate, frozen judge with its own engine (config.py: judge mode only)
        judge_policy, judge_tok = load_policy(args.judge_model, args.dtype, args.device)
        judge_engine = make_engine(args.engine, judge_policy, judge_tok, args.judge_model, args.dtype, args.gen_batch, **settings)
    checker = data.tasks.checker(args.data, args.answer_format)  # judges an answer against the truth: evaluation, monitoring, truth baseline
    reward_settings = dict(embed=embed, judge=greedy_replies(judge_engine, args.judge_max_tokens, context_length(judge_policy)),
                           entropy_coef=args.entropy_coef, entropy_form=args.entropy_form,
                           centroid_anchor=args.centroid_anchor, cluster_k_min=args.cluster_k_min,
                           cluster_k_max=args.cluster_k_max, seed=args.seed, checker=checker)
    dist.print0(f"model {model_path} | engine {engine.name} | {len(rows)} questions | run folder {out}"
                + (f" | {dist.world} ranks, {'FSDP' if args.fsdp else 'DDP'}" if dist.launched else ""))
    random.seed(args.seed)  # after the engine: vLLM re-seeds torch's global generator when it starts
    torch.manual_seed(args.seed)
    run = Run(args, out, rows, prompts, checker, model, tok, engine, judge_engine,
              reward_settings, processor or tok, data.tasks.marker_files(model_path), model_path, resume_from, engine_model,
              lock)
    # The questions trained on: all of them, or --adapt-on of them (evaluation always covers all)
    if args.adapt_on > len(rows):
        raise SystemExit(f"--adapt-on {args.adapt_on}: the data has only {len(rows)} usable questions")
    run.pool = sorted(random.Random(args.seed).sample(range(len(rows)), args.adapt_on)) if args.adapt_on else list(range(len(rows)))
    if args.prompts_per_step > len(run.pool):  # recorded as used: config.json says what ran
        dist.print0(f"--prompts-per-step {args.prompts_per_step}: the data has {len(run.pool)} questions to train on; "
                    f"{len(run.pool)} per step")
        args.prompts_per_step = len(run.pool)
    run.per_step = args.prompts_per_step
    if run.per_step % dist.world:  # equal shares: every rank runs the same number of forward/backward passes
        raise SystemExit(f"--prompts-per-step {run.per_step} over {dist.world} ranks: use a multiple of {dist.world} "
                         f"(each rank samples and trains the same number of questions)")
    run.my_share = dist.shard(range(run.per_step))
    if dist.is_main():  # every check passed: the run's flags (--resume reads them back)
        with checkpoint.disk_errors(out, "config.json"):
            (out / "config.json").write_text(json.dumps(vars(args), indent=1))
            if not (args.resume and (out / "data.json").exists()):
                checkpoint.write_atomic(out / "data.json", json.dumps(fingerprint, indent=1))
    return run


def resume_point(out: Path, args) -> Path | None:
    """--resume: the newest intact checkpoint (checkpoint.resumable), one line for each damaged one
    skipped; with none intact, step 0 only when --restart says so."""
    with dist.main_first():  # rank 0 looks first (and renames the damaged ones), the others find what is left
        folder, damaged = checkpoint.resumable(out)
    for line in damaged:
        dist.print0(f"--resume {out}: {line}")
    if damaged and folder is None and not args.restart:
        raise SystemExit(f"--resume {out}: no intact checkpoint left ({len(damaged)} damaged, kept as *.damaged); pass "
                         f"--restart to start the run over from step 0")
    dist.print0(f"--resume {out}: " + (f"from {folder.name}" if folder else "no intact checkpoint, from step 0"))
    return folder


def setup_training(run: Run) -> None:
    """The optimizer side: number of steps, the frozen KL reference, DDP / FSDP, AdamW and the LR
    schedule, and a resumed run's state (AdamW, schedule, data order, RNG), metrics.jsonl opened."""
    args = run.args
    run.steps_per_epoch = math.ceil(len(run.pool) / run.per_step)
    run.total_steps = args.max_steps or max(1, round(args.epochs * run.steps_per_epoch))
    ref = None
    if args.kl_coef > 0:  # a frozen copy of the start model for the KL term
        ref, _ = load_policy(run.model_path, args.dtype, args.device)
        ref.eval().requires_grad_(False)
    trainer = dist.wrap(run.model, args.fsdp)  # torchrun: DDP or FSDP; one process: the model itself
    opt = torch.optim.AdamW(trainer.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(args, run.total_steps))
    # the schedule steps on skipped updates too, which torch warns about at every such step
    warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
    par = dist.Ranks(run.my_share, args.fsdp, run.engine_model) if dist.launched else OneProcess()
    run.learner = Learner(trainer, opt, sched, run.engine, run.tok.pad_token_id, run.reward_settings, ref, par)
    if run.resume_from:  # every rank loads the same checkpoint: weights (setup), AdamW, schedule, data order, RNG
        run.start, run.order, opt_state = checkpoint.restore(run.resume_from, sched, dist.rank, dist.world)
        dist.load_optimizer_state(trainer, opt, opt_state)
    if dist.is_main():
        for name in ("metrics.jsonl", "eval_steps.jsonl", "groups.jsonl"):  # steps after the checkpoint are redone
            checkpoint.trim_metrics(run.out / name, run.start)
        run.log = open(run.out / "metrics.jsonl", "a")
    # resumed: the count of skipped updates goes on from the checkpoint's step (as the log has it), on every rank
    run.nonfinite_skips = dist.broadcast(([0] + [m["nonfinite_skips"] for m in read_steps(run.out)])[-1] if dist.is_main() else 0)


def lr_lambda(args, total_steps: int):
    warm = int(args.warmup_ratio * total_steps)

    def f(step):
        if step < warm:
            return (step + 1) / warm
        if args.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))
        return 1.0
    return f


def next_questions(run: Run) -> list[int]:
    """The step's B questions, from a shuffled pass over the pool (the same on every rank: same seed);
    returns this rank's share of them (all of them in one process)."""
    if len(run.order) < run.per_step:
        run.order += random.sample(run.pool, len(run.pool))
    step_questions, run.order = run.order[:run.per_step], run.order[run.per_step:]
    return [step_questions[p] for p in run.my_share]


def evaluate_run(run: Run, tag: str, step: int | None = None) -> dict:
    """eval.py's metrics on every question, written to eval_{tag}.json (+ per-question JSONL), or, during
    training (--eval-every), as one line {"step": step, ...} of eval_steps.jsonl; {} when --eval-k is 0.
    A resumed run reads its eval_before.json back. Under torchrun each rank answers a shard of the
    questions (the K GPUs share the work) and rank 0 summarises every rank's records."""
    args, done = run.args, run.out / f"eval_{tag}.json"
    if tag == "before" and args.resume and done.exists():
        try:
            return json.loads(done.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise SystemExit(f"--resume {run.out}: eval_before.json is damaged ({type(e).__name__}); move it away to "
                             f"resume without the evaluation before training") from None
    if tag == "before" and run.resume_from is not None:  # the weights are trained ones: no "before" to measure
        dist.print0(f"--resume {run.out}: no eval_before.json; the run goes on without the evaluation before training")
        return {}
    if args.eval_k <= 0:
        return {}
    t = time.time()
    my_share = dist.shard(range(len(run.prompts)))  # this rank's questions (all of them in one process)
    records = question_records(run.engine, [run.prompts[i] for i in my_share], [run.rows[i]["answer"] for i in my_share],
                               args.eval_k, args.eval_temperature, args.eval_top_p, args.max_tokens, args.seed,
                               [run.rows[i]["question"] for i in my_share], my_share if dist.launched else None,
                               answer_format=args.answer_format, checker=run.checker)
    records = dist.gather_shards(records)  # every question, in order, on rank 0
    if not dist.is_main():
        return {}
    summary = summarize(records, args.eval_k, args.seed)
    before = run.out / "eval_before_questions.jsonl"
    if tag == "after" and before.exists():  # label-free: did training change what the model votes for?
        summary["votes_changed"] = votes_changed([json.loads(line) for line in open(before)], records, args.answer_format)
    summary["seconds"] = round(time.time() - t, 1)
    if step is not None:
        with checkpoint.disk_errors(run.out, "eval_steps.jsonl"), open(run.out / "eval_steps.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **summary}) + "\n")
        tqdm.write(f"eval at step {step}: {format_summary(summary)}")
        return summary
    with checkpoint.disk_errors(run.out, f"eval_{tag}.json"):  # the questions first: eval_{tag}.json means both are whole
        checkpoint.write_atomic(run.out / f"eval_{tag}_questions.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        checkpoint.write_atomic(done, json.dumps(summary, indent=1))
    print(f"eval {tag}: {format_summary(summary)}")
    return summary


def write_step(run: Run, m: dict, groups: list[dict]) -> None:
    """Step 7 on rank 0: one line in metrics.jsonl and on screen, the guards' warnings, and with
    --log-groups the step's groups in groups.jsonl."""
    if not dist.is_main():
        return
    with checkpoint.disk_errors(run.out, "metrics.jsonl"):
        run.log.write(json.dumps(jsonable(m), allow_nan=False) + "\n")
        run.log.flush()
    if groups:
        with checkpoint.disk_errors(run.out, "groups.jsonl"), open(run.out / "groups.jsonl", "a") as f:
            f.writelines(json.dumps(g) + "\n" for g in groups)
    seconds = sum(m[k] for k in ("t_sample", "t_reward", "t_train", "t_sync"))
    truth = f" | label_acc {m['label_acc']:.2f} | true_reward {m['true_reward']:.3f}" if "label_acc" in m else ""
    tqdm.write(f"step {m['step']:4d} | reward {m['reward_mean']:.3f} | maj_ratio {m['majority_ratio']:.2f}{truth} | "
               f"ent {m['entropy']:.3f} | kl {m['kl']:.4f} | {seconds:.2f}s (sample {m['t_sample']:.2f} train {m['t_train']:.2f})"
               + ("" if m["update"] == "ok" else f" | update skipped: {m['update']}"))
    if m["update"] == "nonfinite":
        tqdm.write(f"WARNING step {m['step']}: non-finite loss or gradient, update skipped "
                   f"({m['nonfinite_skips']} so far); lower --lr or check the data")
    if m["update"] == "no-signal" and m["truncated_frac"] == 1.0:  # why nothing was learned, when it is this
        tqdm.write(f"WARNING step {m['step']}: every completion reached --max-tokens {run.args.max_tokens} before its end, "
                   "so none has an answer and there is nothing to learn; raise --max-tokens")
    if m["collapse_warning"]:
        tqdm.write(f"WARNING step {m['step']}: {m['collapse_warning']}")


def check_update(run: Run, m: dict) -> None:
    """Guard: a step whose update left the weights NaN/inf, or moved their global norm by more than
    --max-weight-change (a learning rate far too high: normal updates move it by well under 0.1%),
    stops the run before a checkpoint or final/ keeps those weights. Every rank sees the same norm."""
    limit, change = run.args.max_weight_change, m["weight_change"]
    if math.isfinite(change) and (not limit or change <= limit):
        return
    what = ("made the weights' norm NaN/inf" if not math.isfinite(change) else
            f"changed the weights' norm by {change:.1%}" if change < 10 else f"multiplied the weights' norm by {1 + change:.3g}")
    what += f" (limit --max-weight-change {limit:g})" if math.isfinite(change) else ""
    newest = checkpoint.latest(run.out)
    raise SystemExit(f"step {m['step']}: the update at lr {m['lr']:.3g} {what}; the run stops without saving these weights "
                     f"({'the newest checkpoint, ' + newest.name + ', is from before' if newest else 'no checkpoint kept'}); "
                     f"start again with a lower --lr")


def checkpoint_if_due(run: Run, stop: checkpoint.Signals, step: int) -> None:
    """A checkpoint every --save-every steps and of the last step (a stop in the final evaluation then
    redoes that evaluation only), and of the step in which a signal came (to any process); then the run
    stops (checkpoint.Stopped)."""
    asked = stop.asked(run.learner.par)  # every process asks, each step: they stop after the same one
    every = run.args.save_every
    if asked or (every and (step % every == 0 or step == run.total_steps)):
        start = time.time()
        save_checkpoint(run, step)
        if asked:
            stop.saved = time.time() - start  # the stop's line says how long its checkpoint took
            raise checkpoint.Stopped()


def save_checkpoint(run: Run, step: int) -> None:
    """Every rank takes part (FSDP gathers the weights and AdamW state; each rank's RNG state is kept),
    rank 0 writes, the others wait until the folder is whole."""
    opt_state, rngs, weights = dist.training_state(run.learner.model, run.learner.opt)
    if dist.is_main():
        readme = card.model_card(run.args, run.out.name, card.checkpoint_evaluations(run.out, step), step, run.total_steps,
                                 dist.world)  # the model card, at this step
        with checkpoint.disk_errors(run.out, f"checkpoint step {step}", checkpoint.size_on_disk(run.model, True)):
            checkpoint.save(run.out, step, run.model, run.tokenizer_or_processor, opt_state, run.learner.sched, run.order,
                            run.markers, run.args.keep_checkpoints, weights, rngs, texts={"README.md": readme})
    dist.barrier()


def write_final(run: Run, before: dict) -> None:
    """final/: the trained model, HF format, with its model card (card.py; the evaluation after training
    is added by finish) (rank 0 writes; FSDP gathers the weights first)."""
    weights = dist.full_state_dict(run.learner.model) if run.args.fsdp else None
    if dist.is_main():
        with checkpoint.disk_errors(run.out, "final/", checkpoint.size_on_disk(run.model, False)):
            readme = card.model_card(run.args, run.out.name, {"before": before}, run.total_steps, run.total_steps, dist.world)
            checkpoint.write_model(run.out / "final", run.model, run.tokenizer_or_processor, run.markers, weights=weights,
                                   texts={"README.md": readme})


def finish(run: Run, before: dict, after: dict) -> None:
    """final/'s model card with the evaluation after training, curves.png, and the before/after table (rank 0)."""
    args = run.args
    if run.log:
        run.log.close()
    if dist.is_main():
        checkpoint.write_atomic(run.out / "final" / "README.md", card.model_card(  # the card is whole, old or new
            args, run.out.name, {"before": before, "after": after}, run.total_steps, run.total_steps, dist.world))
        plot_curves(run.out, args)
        if before and after:
            print(f"\n{'metric':<17}{'before':>9}{'after':>9}")
            for k in before:
                if isinstance(before[k], float) and k != "seconds":
                    print(f"{k:<17}{before[k]:>9.3f}{after[k]:>9.3f}")
            k = args.eval_k
            if f"avg@{k}" in after and f"maj@{k}" in before:
                print(f"TTRL claim (after avg@{k} >= before maj@{k}): {after[f'avg@{k}']:.3f} vs {before[f'maj@{k}']:.3f}")
            if "votes_changed" in after:
                print(f"majority answer changed on {after['votes_changed']} of {after['n_questions']} questions")
        print(f"run folder: {run.out}")
    dist.teardown({run.engine, run.judge_engine})


if __name__ == "__main__":
    main()
