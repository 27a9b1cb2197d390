"""The model-side code against references, and TTRL end to end on the embedded tiny model.

    python -m pytest tests/test_train.py -q     # builds the tiny model once (~2-3 min) if not cached
"""
import dataclasses
import json

import pytest
import torch

import data.prompts
import data.tasks
from data import tinymath
import grpo
import train
from rewards import REWARDS
from sample import HFEngine, load_policy


@pytest.fixture(scope="module")
def policy():
    path = str(tinymath.get_model())
    model, tok = load_policy(path)
    return path, model, tok


def prompts_for(tok, path, n=4):
    return [data.prompts.make_prompt(r["question"], tok, data.tasks.embedded_format(path)) for r in tinymath.test_split()[:n]]


def test_our_logprobs_match_transformers_loss(policy):
    # At T = 1 the mean of our completion log-probs must equal -(the cross-entropy transformers computes).
    path, model, tok = policy
    rollouts = [r for g in HFEngine(model, tok).generate(prompts_for(tok, path), n=2, temperature=1.0, seed=0) for r in g]
    for r in rollouts:
        batch = train.collate([r], tok.pad_token_id)
        with torch.no_grad():
            logp = train.sequence_logprobs(model, batch, 1.0)
            labels = torch.tensor([[-100] * len(r.prompt_ids) + r.ids])
            ref = model(input_ids=batch.input_ids, labels=labels).loss
        ours = -(logp * batch.mask).sum() / batch.mask.sum()
        assert torch.allclose(ours, ref, atol=1e-5)


def test_sampler_logprobs_match_trainer(policy):
    # The engine's log-probs (after temperature) are what the trainer computes for the same tokens.
    path, model, tok = policy
    groups = HFEngine(model, tok).generate(prompts_for(tok, path), n=4, temperature=0.7, seed=1)
    batch = train.collate([r for g in groups for r in g], tok.pad_token_id)
    with torch.no_grad():
        logp = train.sequence_logprobs(model, batch, 0.7)
    diff = ((logp - batch.sampler_logp).abs() * batch.mask).max().item()
    assert diff < 1e-4, diff


def test_tiny_model_is_imperfect_the_right_way(policy):
    # Samples disagree at T = 1, and the majority is right more often than one sample.
    from eval import evaluate
    path, model, tok = policy
    rows = tinymath.test_split()[:32]
    summary, _ = evaluate(HFEngine(model, tok), prompts_for(tok, path, 32), [r["answer"] for r in rows],
                          k=16, temperature=1.0, top_p=1.0)
    assert summary["maj@16"] > summary["avg@16"] + 0.1, summary
    assert summary["avg@16"] < 0.9, summary


def test_ttrl_step_from_its_own_inputs(policy):
    # The step as the README reads it: a Learner built by hand (no setup, no run folder, no torchrun)
    # and four questions; its result holds the log's inputs, and the update moved the weights.
    import copy

    path, model, tok = policy
    m = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    learner = train.Learner(m, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), HFEngine(m, tok),
                            tok.pad_token_id, reward_settings={})
    args = train.parse_args(["--n-votes", "8", "--n-train", "4"])
    rows = tinymath.test_split()[:4]
    result = train.ttrl_step(learner, prompts_for(tok, path), [r["question"] for r in rows], args, seed=3)
    assert result["rewards"].shape == (4, 8) and len(result["batch"]) == 16
    assert result["logp"].shape == result["entropy"].shape == result["batch"].mask.shape
    assert result["stats"]["update"] == "ok"
    assert any((a - b).abs().max() > 0 for a, b in zip(m.state_dict().values(), model.state_dict().values()))


def test_two_ttrl_steps_change_the_model_and_fill_the_run_folder(policy, tmp_path):
    path, model, _ = policy
    out = train.main(["--out", str(tmp_path / "run"), "--max-steps", "2", "--prompts-per-step", "4",
                      "--n-votes", "8", "--n-train", "4", "--eval-k", "2", "--kl-coef", "0.001"])
    for name in ["config.json", "metrics.jsonl", "eval_before.json", "eval_after.json", "curves.png",
                 "final/config.json", "final/model.safetensors", "final/tokenizer.json"]:
        assert (out / name).exists(), name
    steps = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [s["step"] for s in steps] == [1, 2]
    for key in ["reward_mean", "reward_std", "zero_std_frac", "label_acc", "reward_acc", "majority_ratio",
                "clip_frac", "kl", "entropy", "response_len", "t_sample", "t_reward", "t_train", "t_sync"]:
        assert key in steps[0], key
    trained, _ = load_policy(str(out / "final"))
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert changed
    assert json.loads((out / "config.json").read_text())["n_votes"] == 8


@pytest.mark.parametrize("argv,message", [
    (["--n-votes", "4", "--n-train", "8"], "--n-train 8 > --n-votes 4"),
    (["--n-train", "1"], "--n-train 1"),
])
def test_bad_flags_end_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(argv)
    assert message in capsys.readouterr().err


def test_missing_model_names_the_flag(tmp_path):
    with pytest.raises(SystemExit, match="--model"):
        load_policy(str(tmp_path / "nope"))


@pytest.mark.parametrize("agg,flags", [("token-mean", ["--micro-batch", "2"]), ("seq-mean-token-mean", ["--micro-batch", "2"]),
                                       ("token-mean", ["--grad-checkpointing"])])
def test_memory_savers_give_the_same_update(policy, agg, flags):
    # Gradient accumulation (either loss aggregation) and gradient checkpointing must reproduce
    # the plain full-batch update.
    import copy

    path, model, tok = policy
    groups = HFEngine(model, tok).generate(prompts_for(tok, path), n=3, temperature=1.0, seed=5)
    batch = train.collate([r for g in groups for r in g], tok.pad_token_id)
    batch.advantages = torch.linspace(-1, 1, len(batch))
    updated = []
    for argv in ([], flags):
        args = train.parse_args(["--loss-agg", agg] + argv)
        m = copy.deepcopy(model).train()
        if args.grad_checkpointing:
            m.gradient_checkpointing_enable()
        batch.old_logp = train.no_grad_logprobs(m, batch, args)
        train.update_policy(m, torch.optim.SGD(m.parameters(), lr=1.0), batch, args)
        updated.append(m.state_dict())
    moved = max((updated[0][k] - v).abs().max().item() for k, v in model.state_dict().items())
    assert moved > 1e-4
    for k in updated[0]:
        assert torch.allclose(updated[0][k], updated[1][k], atol=1e-6), k


@pytest.mark.parametrize("extra", [[], ["--kl-coef", "0.1"], ["--dtype", "bfloat16"]])
def test_one_update_per_step_needs_no_separate_old_logprob_pass(policy, extra):
    # With U = 1, update_policy takes the old log-probs from its own forward pass (logp.detach()) instead
    # of a no-gradient pass before it: the same loss, gradients and update, to float tolerance, and the
    # same log-probs and entropy for the log.
    import copy

    path, model, tok = policy
    groups = HFEngine(model, tok).generate(prompts_for(tok, path), n=4, temperature=1.0, seed=7)
    args = train.parse_args(["--micro-batch", "5", "--is-cap", "2"] + extra)
    results = []
    for separate_pass in (True, False):
        batch = train.collate([r for g in groups for r in g], tok.pad_token_id)
        batch.advantages = torch.linspace(-1, 1, len(batch))
        m = copy.deepcopy(model).train()
        if args.kl_coef:
            batch.ref_logp = train.no_grad_logprobs(model, batch, args)
        entropy = None
        if separate_pass:  # a no-gradient pass first, as with U > 1
            batch.old_logp, entropy = train.no_grad_logprobs(m, batch, args, entropy=True)
        stats, old_logp, own_entropy = train.update_policy(m, torch.optim.SGD(m.parameters(), lr=1.0), batch, args)
        assert (own_entropy is None) == separate_pass  # update_policy returns the entropy it computed itself
        results.append((stats, {k: p.grad.clone() for k, p in m.named_parameters()}, m.state_dict(),
                        (old_logp, own_entropy if entropy is None else entropy)))
    (s1, g1, w1, b1), (s2, g2, w2, b2) = results
    assert s1["loss"] == pytest.approx(s2["loss"], abs=1e-6) and s1["clip_frac"] == s2["clip_frac"] == 0.0
    assert s1["kl"] == pytest.approx(s2["kl"], abs=1e-7)
    assert max((g1[k] - g2[k]).abs().max().item() for k in g1) < 1e-6 < max(g.abs().max().item() for g in g1.values())
    assert all(torch.allclose(w1[k], w2[k], atol=1e-6) for k in w1)
    assert torch.allclose(b1[0], b2[0], atol=1e-6) and torch.allclose(b1[1], b2[1], atol=1e-6)  # log-probs, entropy


@pytest.mark.parametrize("reward", list(REWARDS))
def test_every_reward_mode_runs_a_step(policy, reward, tmp_path):
    out = train.main(["--out", str(tmp_path / reward), "--reward", reward, "--encoder", "tfidf", "--engine", "hf",
                      "--max-steps", "1", "--prompts-per-step", "2", "--n-votes", "4", "--n-train", "4", "--eval-k", "0",
                      "--entropy-coef", "0.1"])
    (step,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert 0 <= step["label_acc"] <= 1 and step["reward_std"] >= 0
    if reward == "truth":  # the baseline's label is the truth, its rewards the true rewards
        assert step["label_acc"] == step["reward_acc"] == 1.0 and step["reward_mean"] == pytest.approx(step["true_reward"])  # M = N here


def test_a_new_reward_mode_is_one_function_and_one_entry(policy, tmp_path, monkeypatch):
    # docs/rewards.md's example, registered in REWARDS and nowhere else, runs through train.py.
    import numpy as np

    from rewards import majority

    def confident_majority(answers, ctx):
        rewards, labels = majority(answers, ctx)
        confident = np.array([v.majority_ratio >= 0.5 for v in ctx.votes])  # (B,)
        return rewards * confident[:, None], labels

    monkeypatch.setitem(REWARDS, "confident-majority", confident_majority)
    out = train.main(["--out", str(tmp_path / "run"), "--reward", "confident-majority", "--engine", "hf",
                      "--max-steps", "1", "--prompts-per-step", "4", "--n-votes", "8", "--n-train", "4", "--eval-k", "0"])
    (step,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert step["update"] in ("ok", "no-signal") and 0 <= step["reward_mean"] <= 1


def test_bf16_weights_would_drop_ttrl_sized_updates():
    # Why train.py keeps float32 master weights: lr 5e-7 changes a weight by ~5e-7, below bf16's
    # spacing near 0.02 (2^-13 ~ 1.2e-4), so a bf16 weight would not move at all.
    w = torch.tensor(0.02)
    assert w.bfloat16() + 5e-7 == w.bfloat16()
    assert w + 5e-7 != w


def test_bf16_autocast_run_keeps_float32_weights_and_writes_checkpoints(policy, tmp_path):
    path, model, _ = policy
    out = train.main(["--out", str(tmp_path / "run"), "--engine", "hf", "--dtype", "bfloat16", "--max-steps", "2",
                      "--save-every", "1", "--prompts-per-step", "2", "--n-votes", "4", "--n-train", "4", "--eval-k", "0"])
    # step 2, the last, is checkpointed too (a stop in the final evaluation then redoes only that); no *.tmp left
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    assert data.tasks.embedded_format(str(out / "checkpoints" / "step_000001")) == "tiny-math"
    final, _ = load_policy(str(out / "final"))
    assert all(p.dtype == torch.float32 for p in final.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), final.state_dict().values()))


def test_adapt_on_more_questions_than_the_data_has(tmp_path):
    with pytest.raises(SystemExit, match="--adapt-on 999: the data has only 128 usable questions"):
        train.main(["--adapt-on", "999", "--engine", "hf", "--eval-k", "0", "--out", str(tmp_path / "r")])


def test_eval_every_and_group_log_only_watch(policy, tmp_path):
    # --eval-every and --log-groups change no step; the evaluations land in eval_steps.jsonl (the last
    # step's is eval_after.json), every group in groups.jsonl; a resume redoes their lines once.
    def lines(path, drop=("t_sample", "t_reward", "t_train", "t_sync", "seconds")):
        return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in open(path)]

    data = tmp_path / "q.jsonl"  # 8 questions: quick evaluations
    data.write_text("".join(json.dumps(r) + "\n" for r in tinymath.test_split()[:8]))
    flags = ["--data", str(data), "--engine", "hf", "--max-steps", "3", "--prompts-per-step", "2", "--n-votes", "4",
             "--n-train", "4", "--eval-k", "2", "--save-every", "1"]
    plain = train.main(flags + ["--out", str(tmp_path / "plain")])
    run = train.main(flags + ["--eval-every", "1", "--log-groups", "--out", str(tmp_path / "run")])
    assert lines(plain / "metrics.jsonl") == lines(run / "metrics.jsonl")
    evals, groups = lines(run / "eval_steps.jsonl"), lines(run / "groups.jsonl")
    assert [e["step"] for e in evals] == [1, 2] and {"avg@2", "maj@2", "ci95"} <= set(evals[0])
    assert [g["step"] for g in groups] == [1, 1, 2, 2, 3, 3]
    for m in lines(run / "metrics.jsonl"):  # M = N: the step's mean reward is its groups' mean reward
        mine = [r for g in groups if g["step"] == m["step"] for r in g["rewards"]]
        assert sum(mine) / len(mine) == pytest.approx(m["reward_mean"])
    assert all(len(g["answers"]) == 4 and g["truth"] is not None for g in groups)
    # back to the checkpoint of step 1: steps 2-3, their evaluation and groups are redone, once each
    import shutil
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step_000002")
    train.main(["--resume", str(run)])
    assert lines(run / "eval_steps.jsonl") == evals and lines(run / "groups.jsonl") == groups


def random_batch(vocab=48, rows=12, seed=0):
    """Rows of very different lengths (prompts 2-6 tokens, completions 1-30), right-padded as collate pads."""
    g = torch.Generator().manual_seed(seed)
    prompts = torch.randint(2, 7, (rows,), generator=g).tolist()
    completions = (torch.rand(rows, generator=g) ** 3 * 30).long().add(1).tolist()  # long-tailed: most short
    width = max(p + c for p, c in zip(prompts, completions))
    ids = torch.zeros(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width - 1)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, :p + c] = torch.randint(1, vocab, (p + c,), generator=g)
        mask[i, p - 1:p - 1 + c] = 1
    attention = (ids != 0).long()
    return grpo.Experience(ids, attention, mask, sampler_logp=torch.randn(rows, width - 1, generator=g) * 0.05 * mask - 1,
                           advantages=torch.randn(rows, generator=g))


def padded_update(model, batch, args):
    """The update as computed until 2026-12-04, for reference: each mini-batch in one forward pass,
    every row padded to the batch's longest, the full logits (rows, T, V). Returns (loss, the gradient
    of each update after clipping, weights after)."""
    opt, grads, losses, U = torch.optim.SGD(model.parameters(), lr=0.1), [], [], args.updates_per_step

    def logprobs(b):
        return grpo.token_logprobs(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1], b.targets, args.temperature)
    if U > 1:
        with torch.no_grad():
            batch = dataclasses.replace(batch, old_logp=logprobs(batch))
    for u in range(U):
        mini = batch.rows(u * len(batch) // U, (u + 1) * len(batch) // U)
        logp = logprobs(mini)
        if mini.old_logp is None:
            mini = dataclasses.replace(mini, old_logp=logp.detach())
        loss, _ = grpo.policy_loss(logp, mini, args.eps_low, args.eps_high, args.kl_coef, args.loss_agg, args.is_cap)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
        opt.step()
        losses.append(loss.item())
    return sum(losses) / U, grads, model.state_dict()


class RecordingSGD(torch.optim.SGD):
    """SGD that keeps the (clipped) gradient of every update it applies (SGD, not AdamW: AdamW divides
    by sqrt(v), which turns float noise in a near-zero gradient into a visible step)."""
    grads: list

    def step(self, closure=None):
        self.grads.append({id(p): p.grad.clone() for group in self.param_groups for p in group["params"]})
        return super().step(closure)


@pytest.mark.parametrize("chunk", [7, 4096])  # the head in several chunks (recomputed in backward), or in one
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("flags", [["--updates-per-step", "1"], ["--updates-per-step", "3", "--kl-coef", "0.1"],
                                   ["--updates-per-step", "2", "--micro-batch-tokens", "40", "--temperature", "0.7"]])
def test_update_without_padding_equals_the_padded_one(agg, flags, chunk, monkeypatch):
    # Micro-batches sorted by length and cut to their own longest row, and the head applied chunk by
    # chunk to the completion tokens only, give the update of the padded full-logits computation: the
    # same loss, the same gradient at every update, the same weights after, to float tolerance.
    import copy

    from data.build import random_qwen2

    monkeypatch.setattr(train, "HEAD_CHUNK", chunk)
    model = random_qwen2(dict(vocab_size=48, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=64, max_position_embeddings=64, tie_word_embeddings=True)).train()
    args = train.parse_args(["--loss-agg", agg, "--micro-batch", "3", "--is-cap", "2"] + flags)
    batch = random_batch()
    if args.kl_coef:
        start = copy.deepcopy(model)
        with torch.no_grad():
            for p in start.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        batch.ref_logp = train.no_grad_logprobs(start, batch, args)
    ref_loss, ref_grads, ref_weights = padded_update(copy.deepcopy(model), batch, args)
    ours = copy.deepcopy(model)
    opt = RecordingSGD(ours.parameters(), lr=0.1)
    opt.grads = []
    stats, _, _ = train.update_policy(ours, opt, batch, args)
    assert stats["update"] == "ok" and len(opt.grads) == len(ref_grads) == args.updates_per_step
    assert stats["loss"] == pytest.approx(ref_loss, abs=1e-6)
    names = {id(p): k for k, p in ours.named_parameters()}
    for mine, ref in zip(opt.grads, ref_grads):
        assert max((g - ref[names[i]]).abs().max().item() for i, g in mine.items()) < 1e-5
    weights = ours.state_dict()
    assert max((weights[k] - v).abs().max().item() for k, v in ref_weights.items()) < 1e-5
    # and the micro-batches really were cut: less padding than the batch's
    micro = batch.micro_batches(args.micro_batch, args.micro_batch_tokens)
    assert sum(mb.attention_mask.numel() for _, mb in micro) < batch.attention_mask.numel()


def test_which_models_get_their_head_applied_in_chunks():
    # Causal LMs whose logits are head(last hidden state) take the chunked path; wrappers do not.
    from data import tinyaudio, tinydigits

    kinds = {name: train.lm_head(load_policy(str(task.get_model()))[0]) is not None
             for name, task in (("tiny-math", tinymath), ("tiny-digits", tinydigits), ("tiny-sounds", tinyaudio))}
    assert kinds == {"tiny-math": True, "tiny-digits": False, "tiny-sounds": False}


def test_chunked_logprobs_with_every_completion_masked():
    # --mask-truncated can mask every completion of a micro-batch: 0 tokens for the head, log-probs 0,
    # and a backward that runs (the update's loss is then 0), as on the full-logits path
    model = load_policy(str(tinymath.get_model()))[0]
    batch = random_batch(vocab=model.config.vocab_size, rows=3)
    batch = dataclasses.replace(batch, mask=torch.zeros_like(batch.mask))
    logp, entropy = train.sequence_logprobs(model, batch, 1.0, entropy=True)
    assert train.lm_head(model) is not None and not logp.any() and not entropy.any()
    logp.sum().backward()


def test_dtype_auto(tmp_path, monkeypatch, capsys):
    # auto: bfloat16 on a GPU; on a CPU float32 for the embedded models (no measurement), and for a
    # model of 50M+ parameters whichever the measured matmul speed-up says.
    import config

    assert config.auto_dtype("cuda", "tiny-math") == ("bfloat16", "")
    assert train.parse_args([]).dtype == "float32"  # the default run: tiny-math on a CPU
    big = dict(hidden_size=1536, num_hidden_layers=28, intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True,
               num_attention_heads=12, num_key_value_heads=2)
    (tmp_path / "config.json").write_text(json.dumps(big))
    assert config.estimate_parameters(str(tmp_path)) == pytest.approx(1.5437e9, rel=0.001)  # Qwen2.5-Math-1.5B: 1,543,714,304
    for speedup, dtype in ((3.0, "bfloat16"), (0.01, "float32")):
        monkeypatch.setattr(config, "bf16_speedup", lambda width: speedup)
        assert train.parse_args(["--model", str(tmp_path), "--device", "cpu"]).dtype == dtype
        assert f"--dtype auto: {dtype} (about 1544M parameters; a bf16 matmul of its width ran {speedup:.1f}x" in capsys.readouterr().out
    (tmp_path / "config.json").write_text(json.dumps({**big, "hidden_size": 256, "intermediate_size": 512, "vocab_size": 1000}))
    assert train.parse_args(["--model", str(tmp_path), "--device", "cpu"]).dtype == "float32"
    assert "too small for bf16 to pay" in capsys.readouterr().out
    # eval.py: several models share one dtype, and a run folder is sized by the model it started from
    (tmp_path / "config.json").write_text(json.dumps(big))
    monkeypatch.setattr(config, "bf16_speedup", lambda width: 3.0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    (run / "config.json").write_text(json.dumps({"model": str(tmp_path), "lr": 1e-6}))
    assert config.auto_dtype("cpu", str(run))[0] == "bfloat16"
    assert config.auto_dtype("cpu", [str(run), str(tmp_path)])[0] == "bfloat16"
    assert config.auto_dtype("cpu", [str(tmp_path), "tiny-math"]) == ("float32", "")
