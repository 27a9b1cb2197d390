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
    from sample import HFEngine, placeholder_ids

    engine = HFEngine(model, tok, processor=processor)
    groups = engine.generate(prompts, n=4, temperature=1.0, seed=3, max_tokens=max_tokens)
    rollouts = [r for g in groups for r in g]
    assert all(key in r.mm for r in rollouts)
    batch = train.collate(rollouts, tok.pad_token_id)
    with torch.no_grad():
        logp = train.sequence_logprobs(model, batch, 1.0)
        gap = sampler_gap(model, batch, logp, placeholder_ids(tok, processor))
        batch.media = [{**r.mm, key: blank(r.mm[key])} for r in rollouts]
        blanked = train.sequence_logprobs(model, batch, 1.0)
    assert (gap.abs() * batch.mask).max().item() < 1e-4
    assert ((blanked - logp).abs() * batch.mask).max().item() > 1e-3


def sampler_gap(model, batch, logp, placeholders):
    """Trained minus sampled log-probs (B*M, T), once the sampler's renormalisation is accounted for:
    the engines never draw a placeholder token (sample.placeholder_ids), so the sampler's log-probs
    sit -log(1 - p(placeholders)) above the trainer's. A trained model gives the placeholders almost
    nothing (how little depends on the build: 2e-4 was seen), a random one a few percent."""
    import torch

    from sample import cat_mm

    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **cat_mm(batch.media)).logits[:, :-1]
    p_placeholders = logits.float().softmax(-1)[..., placeholders].sum(-1)  # (B*M, T)
    return logp - torch.log1p(-p_placeholders) - batch.sampler_logp
