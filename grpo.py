"""GRPO as pure tensor functions: advantages, log-probs, clipped loss, KL, aggregation.

    python -m pytest tests/test_grpo.py -q        # checked against hand-computed numbers

Notation: B prompts, G rollouts per prompt, T completion tokens, mask m_t = 1 on real tokens.

1. Group advantage (one scalar per rollout, broadcast over its tokens):
       A_i = (r_i - mean_group(r)) / (s + eps)
   with s = std over the group ("group", GRPO), std over the whole batch ("batch"), or s = 1 ("none",
   Dr. GRPO). A group whose rewards are all equal gets A = 0 exactly: it teaches nothing.
2. Token log-prob of the sampled token under temperature tau (the distribution it was sampled from):
       logp_t = log_softmax(z_t / tau)[y_t]
3. Clipped surrogate with ratio rho_t = exp(logp_t - logp_old_t):
       l_t = -w_t * min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)
   w_t corrects the sampler/trainer mismatch (vLLM samples with other kernels than the trainer's):
   truncated importance sampling, w_t = min(exp(logp_old_t - logp_sampler_t), C), a constant (no
   gradient); w_t = 1 when no sampler log-probs are given.
4. Optional KL to a frozen reference (k3 estimator, unbiased and >= 0), delta_t = ref_t - logp_t:
       k3_t = exp(delta_t) - delta_t - 1;      l_t <- l_t + beta * k3_t
5. Aggregation over tokens (the denominators matter, see ../shared/reference/grpo.md):
       "token-mean":            sum_{i,t} m l / sum_{i,t} m
       "seq-mean-token-mean":   mean_i ( sum_t m l / sum_t m )
"""
import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x where mask is 1. dim=None: over everything."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """Formula 1. rewards: (B, G) -> advantages (B, G)."""
    centered = rewards - rewards.mean(dim=1, keepdim=True)  # (B, G)
    if scale == "group":
        return centered / (rewards.std(dim=1, keepdim=True) + eps)
    if scale == "batch":
        return centered / (rewards.std() + eps)
    if scale == "none":
        return centered
    raise ValueError(f"unknown advantage scale {scale!r}: use group, batch or none")


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Formula 2. logits (N, T, V) predicting tokens (N, T) -> logp (N, T)."""
    logp = (logits.float() / temperature).log_softmax(-1)  # (N, T, V)
    return logp.gather(-1, tokens[..., None]).squeeze(-1)  # (N, T)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the sampling distribution at each position: (N, T, V) -> (N, T). For logging."""
    logp = (logits.float() / temperature).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Formula 4, per token: exp(ref - logp) - (ref - logp) - 1."""
    delta = ref_logp - logp
    return delta.exp() - delta - 1


def aggregate(loss: torch.Tensor, mask: torch.Tensor, how: str = "token-mean") -> torch.Tensor:
    """Formula 5. loss, mask: (N, T) -> scalar."""
    if how == "token-mean":
        return masked_mean(loss, mask)
    if how == "seq-mean-token-mean":
        return masked_mean(loss, mask, dim=1).mean()
    raise ValueError(f"unknown loss aggregation {how!r}: use token-mean or seq-mean-token-mean")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                eps_low: float = 0.2, eps_high: float = 0.2, ref_logp: torch.Tensor | None = None,
                beta: float = 0.0, agg: str = "token-mean", sampler_logp: torch.Tensor | None = None,
                is_cap: float = 2.0) -> tuple[torch.Tensor, dict]:
    """Formulas 3-5. logp, old_logp, ref_logp, sampler_logp, mask: (N, T); advantages: (N,). -> (loss, stats)"""
    adv = advantages[:, None]  # (N, 1): one advantage for every token of a rollout
    ratio = (logp - old_logp).exp()  # (N, T)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.min(unclipped, clipped)  # (N, T)
    stats = {"clip_frac": masked_mean((clipped < unclipped).float(), mask).item()}
    if sampler_logp is not None:
        w = (old_logp - sampler_logp).exp().clamp(max=is_cap).detach()  # (N, T)
        per_token = w * per_token
        stats["is_weight"] = masked_mean(w, mask).item()
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp)  # (N, T)
        per_token = per_token + beta * kl
        stats["kl"] = masked_mean(kl, mask).item()
    return aggregate(per_token, mask, agg), stats
