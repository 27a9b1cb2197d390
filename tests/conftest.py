"""Tests import the repo's flat modules (grpo, rewards, ...) from the repository root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def check_media_reach_the_trainer(model, tok, processor, prompts, max_tokens, key, blank):
    """The trainer's log-prob pass must see the same image / audio tensors as the sampler: the sampled
    and trained log-probs agree; and with `blank(tensor)` in place of each rollout's `key` tensor they
    differ, so the media really reach the model."""
    import torch

    import train
    from sample import HFEngine

    groups = HFEngine(model, tok, processor=processor).generate(prompts, n=4, temperature=1.0, seed=3, max_tokens=max_tokens)
    rollouts = [r for g in groups for r in g]
    assert all(key in r.mm for r in rollouts)
    batch = train.collate(rollouts, tok.pad_token_id)
    with torch.no_grad():
        logp, _ = train.sequence_logprobs(model, batch, 1.0)
        blanked = train.sequence_logprobs(model, {**batch, "mm": [{**r.mm, key: blank(r.mm[key])} for r in rollouts]}, 1.0)[0]
    assert ((logp - batch["sampler_logp"]).abs() * batch["mask"]).max().item() < 1e-4
    assert ((blanked - logp).abs() * batch["mask"]).max().item() > 1e-3
