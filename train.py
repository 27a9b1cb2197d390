"""Test-time RL (TTRL): improve a model on unlabeled test questions with majority-vote rewards + GRPO.

    python train.py                                        # embedded tiny-math model, CPU, a few minutes
    python train.py --max-steps 2 --eval-k 4               # a smoke test
    python train.py --preset tiny-digits                   # TTRV on images: the embedded tiny vision-language model
    python train.py --preset tiny-sounds --reward cluster  # OP-TTRAV on audio, free-text answers (tinyaudio.py)
    python train.py --preset ttrl-math500                  # the TTRL paper's MATH-500 recipe (GPU; presets: config.py)
    python train.py --preset ttrl-aime24 --model Qwen/Qwen2.5-Math-7B --save-every 40

Each step follows the numbered algorithm in README.md:
  1. sample     N = --n-votes completions for each of --prompts-per-step questions
  2. reward     vote over the N answers -> pseudo-label; reward 1 if a completion agrees, else 0
  3. advantage  keep the first M = --n-train completions per question (samples are i.i.d., so the
                first M are a uniform subset); group-normalised advantages over those M
  4. loss       clipped GRPO surrogate (+ k3 KL to the frozen start model) on the completion tokens
  5. step       AdamW step, gradient clipping, LR schedule
  6. sync       the rollout engine (vLLM by default) gets the new weights, in place
  7. log        one line per step, metrics.jsonl, curves.png
Before and after: eval.py's metrics on the same questions (this is where the true answers are read).

Run folder (--out, default runs/<time>): config.json, metrics.jsonl, eval_before.json,
eval_after.json, curves.png, checkpoints/step_*/ (--save-every), final/ (HF format: load them with
from_pretrained, or evaluate them all with `python eval.py --model RUN_FOLDER`).
A crashed or killed run continues with `python train.py --resume RUN_FOLDER` (checkpoint.py).
Several GPUs: `torchrun --nproc_per_node K train.py ...` shards each step's prompts over K processes
(DDP, or --fsdp to shard the trainer too); rank 0 alone writes the run folder (dist.py, README).
Guards: an update with a NaN/inf loss or gradient is skipped and counted; a step with no learning
signal (every group unanimous, or every trained token masked by --mask-truncated) makes no update;
both show in metrics.jsonl ("update"), as do collapse warnings (monitor.py).

Precision: weights and AdamW state stay float32; --dtype bfloat16 runs forward and backward under
autocast. Pure bf16 weights would silently drop TTRL's updates: lr 5e-7 moves a weight of 0.02 by
~5e-7, far below bf16's spacing there (~1e-4), so the sum rounds back to the old weight.
"""
import copy
import json
import math
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import checkpoint
from config import check_distributed, parse_args
import data
import dist
import grpo
from eval import format_summary, question_records, summarize
from encoders import load_encoder
from monitor import CollapseMonitor, plot_curves
from rewards import (centroid_rewards, cluster_rewards, empty_mask, extract, frequency_rewards, judge_prompt,
                     judge_reference, judge_rewards, majority_vote, medoid_index)
from sample import cat_mm, context_length, encode_prompt, load_policy, load_processor, make_engine, resolve_model


# ----------------------------------------------------------------------------- model-side helpers
def collate(rollouts, pad_id: int) -> dict:
    """Prompt + completion, right-padded. Position t of `targets` is predicted by logits at t."""
    seqs = [r.prompt_ids + r.ids for r in rollouts]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id)  # (n, L)
    mask = torch.zeros(len(seqs), width - 1)  # (n, L-1): 1 where the target is a completion token
    sampler_logp = torch.zeros(len(seqs), width - 1)  # (n, L-1)
    for i, (r, s) in enumerate(zip(rollouts, seqs)):
        ids[i, :len(s)] = torch.tensor(s)
        p, c = len(r.prompt_ids), len(r.ids)
        mask[i, p - 1:p - 1 + c] = 1
        sampler_logp[i, p - 1:p - 1 + c] = torch.tensor(r.logprobs)
    attn = (torch.arange(width) < torch.tensor([len(s) for s in seqs])[:, None]).long()  # (n, L)
    batch = {"input_ids": ids, "attention_mask": attn, "targets": ids[:, 1:], "mask": mask, "sampler_logp": sampler_logp}
    if rollouts[0].mm:  # image prompts: each rollout's pixel tensors, joined per micro-batch (sample.cat_mm)
        batch["mm"] = [r.mm for r in rollouts]
    return batch


def sequence_logprobs(model, batch: dict, temperature: float, dtype: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each target token and the sampling entropy at each position: (n, L-1) each.
    dtype bfloat16: the forward runs under autocast (float32 weights); log-softmax is float32 either way."""
    device = batch["input_ids"].device.type
    mm = {k: v.to(batch["input_ids"].device) for k, v in cat_mm(batch.get("mm", [])).items()}  # e.g. pixel_values (n, 3, H, W)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **mm).logits[:, :-1]  # (n, L-1, V)
    logp = grpo.token_logprobs(logits, batch["targets"], temperature)  # (n, L-1)
    with torch.no_grad():
        entropy = grpo.token_entropy(logits, temperature)  # (n, L-1)
    return logp, entropy


def lr_lambda(args, total_steps: int):
    warm = int(args.warmup_ratio * total_steps)

    def f(step):
        if step < warm:
            return (step + 1) / warm
        if args.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))
        return 1.0
    return f


# ----------------------------------------------------------------------------- the loop
def main(argv=None):
    args = parse_args(argv, __doc__)
    dist.init(args.device)  # torchrun: join the process group (world 1 and no group without it)
    check_distributed(args, dist.launched, dist.world)
    # rank 0's clock names the default folder; the broadcast also waits until every rank has read
    # config.json (--resume) before rank 0 rewrites it
    out = Path(dist.broadcast(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}"))
    if dist.is_main():  # rank 0 alone writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(vars(args), indent=1))

    rows = data.load_rows(args.data, args.question_key, args.answer_key,  # data first: its errors are instant
                          data.media_columns(args.image_key, args.audio_key))
    grade = data.grader(args.data, args.answer_format)  # the true answers' judge: evaluation and monitoring only
    template = data.load_template(args.prompt_template)
    with dist.main_first():  # one process builds an embedded model into the cache, the others load it
        model_path = resolve_model(args.model)
    resume_from = checkpoint.latest(out) if args.resume else None
    if args.resume:
        dist.print0(f"--resume {out}: " + (f"from {resume_from.name}" if resume_from else "no complete checkpoint yet, from step 0"))
    policy_path = str(resume_from or model_path)  # the policy (and its engine) start from the checkpoint
    model, tok = load_policy(policy_path, "float32", args.device)  # float32 master weights, see the docstring
    processor = load_processor(model)  # a multimodal model's image / audio pipeline, else None
    if args.grad_checkpointing:  # active in train mode only; the engines generate in eval mode
        model.gradient_checkpointing_enable()
    prompts = data.make_prompts(rows, tok, model_path, args.model, template, processor, args.answer_format)
    ctx = context_length(model)
    if ctx:  # like an empty row (data.py): a question that cannot be answered within the context is skipped, counted
        fits = [len(encode_prompt(p, tok, processor)[0]) + args.max_tokens <= ctx for p in prompts]
        if not all(fits):
            dist.print0(f"--data {args.data}: skipped {fits.count(False)} of {len(rows)} rows whose prompt + --max-tokens "
                  f"{args.max_tokens} exceeds the model context ({ctx}): rows {[i + 1 for i, f in enumerate(fits) if not f][:10]}")
            if not any(fits):
                raise SystemExit(f"--data {args.data}: no prompt fits the model context ({ctx}) with --max-tokens {args.max_tokens}")
            rows, prompts = [r for r, f in zip(rows, fits) if f], [p for p, f in zip(prompts, fits) if f]
    truths = [r["answer"] for r in rows]  # ground truth: evaluation and monitoring only, never the reward
    engine_settings = dict(seed=args.seed, kv_cache_gib=args.vllm_kv_gib, gpu_memory_utilization=args.vllm_gpu_memory,
                           tensor_parallel=args.tp)
    engine = make_engine(args.engine, model, tok, policy_path, args.dtype, args.gen_batch, processor, **engine_settings)
    gen_model = model
    # --fsdp shards `model` in place, and a sharded module cannot generate on one rank alone (each
    # forward gathers layers from all ranks): the hf engine then samples from its own full copy
    if args.fsdp and engine.name == "hf":
        gen_model = copy.deepcopy(model)
        engine.sync(gen_model)
    encoder = load_encoder(args.encoder) if args.reward in ("centroid", "cluster", "cluster-continuous", "judge") else None
    judge, judge_policy = engine, model
    if args.reward == "judge" and args.judge_model:  # a separate, frozen judge with its own engine
        judge_policy, judge_tok = load_policy(args.judge_model, args.dtype, args.device)
        judge = make_engine(args.engine, judge_policy, judge_tok, args.judge_model, args.dtype, args.gen_batch, **engine_settings)
    judge.context = context_length(judge_policy)
    dist.print0(f"model {model_path} | engine {engine.name} | {len(rows)} questions | run folder {out}"
                + (f" | {dist.world} ranks, {'FSDP' if args.fsdp else 'DDP'}" if dist.launched else ""))
    random.seed(args.seed)  # after the engine: vLLM re-seeds torch's global generator when it starts
    torch.manual_seed(args.seed)

    def run_eval(tag):
        """eval.py's metrics. Under torchrun each rank answers a shard of the questions (the K GPUs
        share the work, none idles) and rank 0 summarises every rank's records."""
        if args.eval_k <= 0:
            return {}
        t = time.time()
        mine = dist.shard(range(len(prompts)))
        records = question_records(engine, [prompts[i] for i in mine], [truths[i] for i in mine], args.eval_k,
                                   args.eval_temperature, args.eval_top_p, args.max_tokens, args.seed,
                                   [rows[i]["question"] for i in mine], mine if dist.launched else None,
                                   answer_format=args.answer_format, grader=grade)
        records = dist.gather_shards(records)  # every question, in order, on rank 0
        if not dist.is_main():
            return {}
        summary = summarize(records, args.eval_k, args.seed)
        summary["seconds"] = round(time.time() - t, 1)
        (out / f"eval_{tag}.json").write_text(json.dumps(summary, indent=1))
        with open(out / f"eval_{tag}_questions.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        print(f"eval {tag}: {format_summary(summary)}")
        return summary

    # The questions trained on: all of them, or --adapt-on of them (evaluation always covers all)
    if args.adapt_on > len(rows):
        raise SystemExit(f"--adapt-on {args.adapt_on}: the data has only {len(rows)} usable questions")
    pool = sorted(random.Random(args.seed).sample(range(len(rows)), args.adapt_on)) if args.adapt_on else list(range(len(rows)))
    per_step = min(args.prompts_per_step, len(pool))
    if per_step % dist.world:  # equal shares: every rank runs the same number of forward/backward passes
        raise SystemExit(f"--prompts-per-step {per_step} over {dist.world} ranks: use a multiple of {dist.world} "
                         f"(each rank samples and trains the same number of questions)")
    mine = dist.shard(range(per_step))  # this rank's places in every step's list of questions
    done_before = out / "eval_before.json"
    before = json.loads(done_before.read_text()) if args.resume and done_before.exists() else run_eval("before")

    steps_per_epoch = math.ceil(len(pool) / per_step)
    total = args.max_steps or max(1, round(args.epochs * steps_per_epoch))
    ref = None
    if args.kl_coef > 0:  # a frozen copy of the start model for the KL term
        ref, _ = load_policy(model_path, args.dtype, args.device)
        ref.eval().requires_grad_(False)
    trainer = dist.wrap(model, args.fsdp)  # what the loss backpropagates through: DDP, FSDP, or model itself
    opt = torch.optim.AdamW(trainer.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(args, total))
    start, order = 0, []
    if resume_from:  # every rank loads the same checkpoint: weights (above), AdamW, schedule, data order, RNG
        start, order, opt_state = checkpoint.restore(resume_from, sched, dist.rank, dist.world)
        dist.load_optimizer_state(trainer, opt, opt_state)
    log = None
    if dist.is_main():
        checkpoint.trim_metrics(out / "metrics.jsonl", start)  # steps after the checkpoint are redone
        log = open(out / "metrics.jsonl", "a")
    monitor = CollapseMonitor(args.collapse_entropy, args.collapse_distinct, args.collapse_patience)
    nonfinite_skips = 0
    # the embedded models' marker files keep their prompt formats with every checkpoint
    extra = list(Path(model_path).glob("tiny*_build.json"))
    saver = processor or tok  # a processor saves the tokenizer and the image / audio pipeline

    def push_weights():
        """Step 6 on every rank: its engine gets the new weights (identical on every rank)."""
        if not args.fsdp:
            engine.sync(model)
            return
        if engine.name == "hf":  # its own full copy, filled tensor by tensor as they are gathered
            own = gen_model.state_dict()
            with torch.no_grad():
                for name, tensor in dist.full_weights(trainer):
                    own[name].copy_(tensor)
            engine.sync(gen_model)
        else:
            engine.sync(dist.full_weights(trainer))  # streamed into vLLM, one gathered tensor at a time

    def save_checkpoint(step: int) -> None:
        """Every rank takes part (FSDP gathers weights and AdamW state; each rank's RNG state is kept),
        rank 0 writes, the others wait until the folder is whole."""
        opt_state, rngs = dist.optimizer_state(trainer, opt), dist.all_gather(checkpoint.rng_state())
        weights = dist.full_state_dict(trainer) if args.fsdp else None
        if dist.is_main():
            checkpoint.save(out, step, model, saver, opt_state, sched, order, extra, args.keep_checkpoints, weights, rngs)
        dist.barrier()

    trainer.train()
    for step in tqdm(range(start, total), desc="TTRL", unit="step", initial=start, total=total,
                     disable=None if dist.is_main() else True):
        t0 = time.time()
        if len(order) < per_step:  # a new shuffled pass over the questions (the same on every rank: same seed)
            order += random.sample(pool, len(pool))
        step_idx, order = order[:per_step], order[per_step:]
        idx = [step_idx[p] for p in mine]  # this rank's questions (all of them without torchrun)

        # 1. sample: N completions per question (under torchrun seeded by the question's place in the
        # step, so a question's samples do not depend on which rank drew it; see sample.py)
        groups = engine.generate([prompts[i] for i in idx], n=args.n_votes, temperature=args.temperature,
                                 top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed * 100003 + step,
                                 positions=mine if dist.launched else None)
        t1 = time.time()

        # 2. reward: answers -> pseudo-label -> rewards (TTRL: 1 if the answer equals the majority vote),
        # per group on the rank that sampled it; then every rank gets every group's rewards (small), as
        # --adv-scale batch and the no-signal decision need the whole step
        votes, rewards, labels = score_groups(groups, [rows[i]["question"] for i in idx], args, encoder, judge)
        rewards = np.stack(dist.all_gather_shards(list(rewards)))  # (B, N) all ranks' groups, in step order
        rewards = torch.tensor(rewards, dtype=torch.float32, device=args.device)  # (B, N)
        t2 = time.time()

        # 3. advantage: the first M completions of each group are trained
        train_rewards = rewards[:, :args.n_train]  # (B, M)
        adv_all = grpo.group_advantages(train_rewards, args.adv_scale)  # (B, M)
        adv = adv_all[mine].flatten()  # (b*M,) this rank's groups (b = B / ranks)
        trained = [r for g in groups for r in g[:args.n_train]]
        batch = collate(trained, tok.pad_token_id)  # tensors (B*M, L-1)
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        truncated = torch.tensor([r.truncated for r in trained], device=args.device)  # (B*M,)
        if args.mask_truncated:  # a cut-off completion never reached its answer: keep it out of the loss
            batch["mask"] = batch["mask"] * ~truncated[:, None]  # (B*M, L-1)
        # (b*M, L-1) the policy that sampled (= the engine's); FSDP's module gathers its layers, DDP's
        # replica needs no wrapper (and no collective) for a pass without gradient
        old_logp, entropy = frozen_logprobs(trainer if args.fsdp else model, batch, args)
        ref_logp = None if ref is None else frozen_logprobs(ref, batch, args)[0]
        # The sampler (vLLM) and the trainer compute the same policy with different kernels: how far apart?
        sampler_gap = dist.masked_mean((old_logp - batch["sampler_logp"]).abs(), batch["mask"])

        # 4-5. loss and optimizer step(s), unless nothing can be learned: every advantage is 0 (each
        # group unanimous) or every trained token is masked. AdamW would still move the weights
        # (momentum, weight decay) on a zero gradient, so skip the update itself. Decided on the whole
        # step (every rank's groups and tokens), so all ranks skip together or none does.
        if (adv_all == 0).all() or dist.all_sum(batch["mask"].sum()) == 0:
            stats, update = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "grad_norm": 0.0, "nonfinite": 0}, "no-signal"
        else:
            stats = grpo_update(trainer, opt, {**batch, "old_logp": old_logp, "adv": adv, "ref_logp": ref_logp}, args)
            update = "nonfinite" if stats["nonfinite"] else "ok"
        nonfinite_skips += stats["nonfinite"]
        with warnings.catch_warnings():  # the schedule counts steps, updated or skipped (torch warns on a skip)
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            sched.step()
        t3 = time.time()

        # 6. sync: the engine samples from the new weights next step
        push_weights()
        t4 = time.time()

        # 7. log (true answers are read here, for monitoring only): every rank's per-group numbers,
        # gathered in step order, so the metrics are those of the whole step; rank 0 writes them
        truth = [truths[i] for i in idx]
        every = dist.all_gather_shards([
            {"true": [float(grade(extract(r.text, args.answer_format), tr)) for r in g], "vote": v, "label_ok": grade(label, tr),
             "len": [len(r.ids) for r in g], "truncated": [r.truncated for r in g]}
            for g, v, label, tr in zip(groups, votes, labels, truth)])
        true_rewards = np.array([e["true"] for e in every])  # (B, N)
        m = {
            "step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 3), "lr": sched.get_last_lr()[0],
            "loss": stats["loss"], "reward_mean": train_rewards.mean().item(), "reward_std": train_rewards.std().item(),
            "zero_std_frac": (train_rewards.std(1) == 0).float().mean().item(),
            "majority_ratio": float(np.mean([e["vote"].majority_ratio for e in every])),
            "distinct_answers": float(np.mean([e["vote"].n_distinct for e in every])),
            "label_acc": float(np.mean([e["label_ok"] for e in every])),
            # does the pseudo-reward (>= 0.5 counts as "right") agree with the true reward?
            "reward_acc": float(((rewards.cpu().numpy() >= 0.5) == true_rewards).mean()),
            "true_reward": float(true_rewards.mean()),
            "clip_frac": dist.all_mean(stats["clip_frac"]), "kl": dist.all_mean(stats["kl"]), "sampler_gap": sampler_gap,
            "entropy": dist.masked_mean(entropy, batch["mask"]), "grad_norm": stats["grad_norm"],
            "response_len": float(np.mean([n for e in every for n in e["len"]])),
            "truncated_frac": float(np.mean([t for e in every for t in e["truncated"]])),
            "truncated_trained": sum(sum(e["truncated"][:args.n_train]) for e in every), "update": update,
            "nonfinite_skips": nonfinite_skips,
            "t_sample": t1 - t0, "t_reward": t2 - t1, "t_train": t3 - t2, "t_sync": t4 - t3,
        }
        m["collapse_warning"] = monitor.check(m)
        if dist.is_main():  # one line in metrics.jsonl and on screen, from rank 0
            log.write(json.dumps(m) + "\n")
            log.flush()
            tqdm.write(f"step {m['step']:4d} | reward {m['reward_mean']:.3f} | label_acc {m['label_acc']:.2f} | "
                       f"maj_ratio {m['majority_ratio']:.2f} | true_reward {m['true_reward']:.3f} | ent {m['entropy']:.3f} | "
                       f"kl {m['kl']:.4f} | {t4 - t0:.2f}s (sample {m['t_sample']:.2f} train {m['t_train']:.2f})"
                       + ("" if update == "ok" else f" | update skipped: {update}"))
            if update == "nonfinite":
                tqdm.write(f"WARNING step {m['step']}: non-finite loss or gradient, update skipped "
                           f"({nonfinite_skips} so far); lower --lr or check the data")
            if m["collapse_warning"]:
                tqdm.write(f"WARNING step {m['step']}: {m['collapse_warning']}")
        if args.save_every and m["step"] % args.save_every == 0 and m["step"] < total:
            save_checkpoint(m["step"])
    if log:
        log.close()

    after = run_eval("after")
    weights = dist.full_state_dict(trainer) if args.fsdp else None  # FSDP: gathered to rank 0
    if not dist.is_main():
        dist.teardown({engine, judge})
        return out
    checkpoint.write_model(out / "final", model, saver, extra, weights=weights)
    plot_curves(out, args)
    if before and after:
        print(f"\n{'metric':<10}{'before':>9}{'after':>9}")
        for k in before:
            if isinstance(before[k], float) and k != "seconds":
                print(f"{k:<10}{before[k]:>9.3f}{after[k]:>9.3f}")
        k = args.eval_k
        print(f"TTRL claim (after avg@{k} >= before maj@{k}): {after[f'avg@{k}']:.3f} vs {before[f'maj@{k}']:.3f}")
    print(f"run folder: {out}")
    dist.teardown({engine, judge})
    return out


def score_groups(groups, questions: list[str], args, encoder=None, judge=None):
    """Step 2 for every reward mode. Returns (votes, rewards (B, N), pseudo-labels).

    The majority vote is always computed: it is TTRL's reward and, for the other modes, the
    collapse monitor (majority ratio, distinct answers). Semantic modes embed all B*N answers in one
    batched call; the judge scores all B*N answers in one batched greedy generation."""
    answers = [[extract(r.text, args.answer_format) for r in g] for g in groups]
    votes = [majority_vote(a, exact=args.answer_format == "text") for a in answers]
    if args.reward == "majority":
        return votes, np.stack([v.rewards for v in votes]), [v.label for v in votes]
    if args.reward == "frequency":
        freq = [frequency_rewards(a, args.entropy_coef, args.entropy_form, v) for a, v in zip(answers, votes)]
        return votes, np.stack([f.rewards for f in freq]), [v.label for v in votes]
    B, N = len(answers), len(answers[0])
    emb = encoder.encode([a or "" for group in answers for a in group]).reshape(B, N, -1)  # (B, N, D)
    rewards, labels, judge_prompts = np.zeros((B, N)), [], []
    for b, group in enumerate(answers):
        empty = empty_mask(group)
        if args.reward == "centroid":
            rewards[b] = centroid_rewards(emb[b], empty, args.centroid_anchor)
            anchor = medoid_index(emb[b], empty)
        elif args.reward in ("cluster", "cluster-continuous"):
            rewards[b], info = cluster_rewards(emb[b], empty, args.cluster_k_min, args.cluster_k_max,
                                               continuous=args.reward == "cluster-continuous", seed=args.seed)
            anchor = info["anchor"]
        else:  # judge: the reference is the group's medoid answer; every answer is scored against it
            anchor, reference = judge_reference(group, emb[b])
            judge_prompts += [{"text": judge_prompt(questions[b], reference, a)} for a in group]
        labels.append(None if anchor is None else group[anchor])
    if args.reward == "judge":
        if judge.context:  # keep the end of a prompt too long for the judge (the answer and the "Score:" cue)
            budget = judge.context - args.judge_max_tokens
            judge_prompts = [{"text": judge.tok.decode(judge.tok(p["text"])["input_ids"][-budget:])} for p in judge_prompts]
        replies = judge.generate(judge_prompts, n=1, temperature=0.0, max_tokens=args.judge_max_tokens)
        for b, group in enumerate(answers):
            rewards[b] = judge_rewards([r[0].text for r in replies[b * N:(b + 1) * N]], empty_mask(group))
    return votes, rewards, labels


def frozen_logprobs(model, batch: dict, args) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and token entropies without gradient, micro-batch by micro-batch: (n, L-1) each."""
    with torch.no_grad():
        parts = [sequence_logprobs(model, mb, args.temperature, args.dtype) for mb in micro_batches(batch, args.micro_batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def grpo_update(model, opt, batch: dict, args) -> dict:
    """Steps 4-5: --updates-per-step optimizer updates, each on a slice of the rollouts, each slice
    split into micro-batches whose gradients add up to the gradient of the slice's loss.
    Guard: an update whose loss or gradient norm is NaN/inf is not applied (counted in "nonfinite").
    Under torchrun `model` is the DDP / FSDP module and `batch` this rank's share of the rollouts: the
    slice's loss is the one over every rank's share (see the share below), and the decisions (skip,
    clip) are taken on numbers that are the same on every rank."""
    stats = {"loss": 0.0, "clip_frac": [], "kl": [], "grad_norm": [], "nonfinite": 0}
    n_seq = len(batch["mask"])
    for u in range(args.updates_per_step):
        upd = {k: None if v is None else v[u * n_seq // args.updates_per_step:(u + 1) * n_seq // args.updates_per_step]
               for k, v in batch.items()}
        # One loss over the slice: weight each micro-batch by its share of --loss-agg's denominator,
        # the denominator of every rank's slice together (tokens or sequences, summed over ranks).
        # DDP and FSDP average gradients over the K ranks, hence the factor K: summed, the K ranks'
        # weighted losses are the 1-rank loss, whatever each rank's token count.
        size = (lambda b: b["mask"].sum()) if args.loss_agg == "token-mean" else (lambda b: float(len(b["mask"])))
        total = dist.all_sum(size(upd))
        opt.zero_grad(set_to_none=True)
        upd_loss = 0.0
        mbs = list(micro_batches(upd, args.micro_batch))
        for j, mb in enumerate(mbs):
            with dist.grad_sync(model, j == len(mbs) - 1):  # one gradient all-reduce per update, in the last backward
                logp, _ = sequence_logprobs(model, mb, args.temperature, args.dtype)  # (m, L-1)
                loss, st = grpo.policy_loss(logp, mb["old_logp"], mb["adv"], mb["mask"], args.eps_low, args.eps_high,
                                            mb["ref_logp"], args.kl_coef, args.loss_agg,
                                            mb["sampler_logp"] if args.is_cap > 0 else None, args.is_cap)
                share = float(size(mb) / total * dist.world)
                (loss * share).backward()
            upd_loss += loss.item() * share
            stats["clip_frac"].append(st["clip_frac"])
            stats["kl"].append(st.get("kl", 0.0))
        upd_loss = dist.all_mean(upd_loss)  # the slice's loss (NaN if any rank's is): the same skip on every rank
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)  # of the all-reduced gradient
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP returns a DTensor
        if not (math.isfinite(norm) and math.isfinite(upd_loss)):
            opt.zero_grad(set_to_none=True)  # the weights and AdamW's moments stay as they were
            stats["nonfinite"] += 1
            continue
        stats["loss"] += upd_loss / args.updates_per_step
        stats["grad_norm"].append(norm)
        opt.step()
    return {k: v if k in ("loss", "nonfinite") else float(np.mean(v)) if v else 0.0 for k, v in stats.items()}


def micro_batches(batch: dict, size: int):
    n = len(batch["mask"])
    for s in range(0, n, size):
        yield {k: (None if v is None else v[s:s + size]) for k, v in batch.items()}


if __name__ == "__main__":
    main()
