"""GRPO as pure tensor functions: group advantages, token log-probs, the clipped loss on a batch.

    python -m pytest tests/test_grpo.py tests/test_ttrl_by_hand.py -q     # against hand-computed numbers

Notation (README): B prompts per step, M trained completions per prompt, so B*M rows in a batch (a
micro-batch has fewer); T token positions per row; V vocabulary; mask m_t = 1 on completion tokens.

1. Group advantage (one number per completion, broadcast over its tokens), rewards r (B, M):
       A_i = (r_i - mean_group(r)) / (s + eps)
   s = the std over the group ("group", GRPO), over the whole batch ("batch"), or 1 ("none", Dr. GRPO).
   A group whose rewards are all equal gets A = 0 exactly: it teaches nothing.
2. Token log-prob of the sampled token y_t under temperature tau (the distribution it was drawn from):
       logp_t = log_softmax(z_t / tau)[y_t]
3. Clipped surrogate, with the ratio rho_t = exp(logp_t - logp_old_t):
       l_t = -w_t * min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)
   w_t corrects the sampler/trainer mismatch (vLLM samples with other kernels than the trainer's):
   truncated importance sampling, w_t = min(exp(logp_old_t - logp_sampler_t), C) with C = is_cap, a
   constant (no gradient); w_t = 1 when is_cap is 0 or the batch has no sampler log-probs.
4. KL to the frozen start model (k3 estimator, unbiased and >= 0), delta_t = logp_ref_t - logp_t:
       k3_t = exp(delta_t) - delta_t - 1;      l_t <- l_t + beta * k3_t      (only with ref_logp)
5. Aggregation over tokens (the denominator matters; the variants: docs/grpo.md):
       "token-mean":            sum_{i,t} m l / sum_{i,t} m
       "seq-mean-token-mean":   mean_i ( sum_t m l / sum_t m )
"""
from dataclasses import dataclass, field, fields

import torch


@dataclass
class Experience:
    """The trained completions of a step as one batch (rows = B*M completions; T = L - 1 positions:
    position t holds token t + 1 of prompt + completion, which the logits at t predict)."""

    input_ids: torch.Tensor  # (B*M, L) prompt + completion, right-padded
    attention_mask: torch.Tensor  # (B*M, L)
    mask: torch.Tensor  # (B*M, T) 1 where the target token is a completion token
    sampler_logp: torch.Tensor | None = None  # (B*M, T) the engine's log-prob of each sampled token
    advantages: torch.Tensor | None = None  # (B*M,) one per completion (formula 1)
    old_logp: torch.Tensor | None = None  # (B*M, T) the policy that sampled, as the trainer computes it
    ref_logp: torch.Tensor | None = None  # (B*M, T) the frozen start model (formula 4); None: no KL term
    media: list = field(default_factory=list)  # per row: its prompt's image / audio tensors ([] for a text batch)

    @property
    def targets(self) -> torch.Tensor:
        return self.input_ids[:, 1:]  # (B*M, T)

    def __len__(self) -> int:
        return len(self.mask)

    def rows(self, start: int, stop: int) -> "Experience":
        """Rows start..stop-1, as they are: a mini-batch (one optimizer update)."""
        return Experience(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[start:stop]
                             for f in fields(self)})

    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(1)  # (rows,) prompt + completion tokens, padding not counted

    def select(self, index: list[int]) -> "Experience":
        """The rows in `index`, cut to the longest of them: a micro-batch (one forward/backward). The
        padding is on the right, so the cut columns are padding in every selected row."""
        width = int(self.lengths()[index].max())  # L of the micro-batch; its T = width - 1

        def take(name, x):
            if x is None or name == "media":
                return [x[i] for i in index] if x else x
            if x.dim() == 1:  # advantages
                return x[index]
            return x[index, :width if name in ("input_ids", "attention_mask") else width - 1]
        return Experience(**{f.name: take(f.name, getattr(self, f.name)) for f in fields(self)})

    def micro_batches(self, rows: int, tokens: int = 0) -> list[tuple[list[int], "Experience"]]:
        """The rows sorted by length, longest first, cut into consecutive micro-batches of at most
        `rows` rows and, when tokens > 0, at most `tokens` padded tokens (rows x the micro-batch's
        longest row; a row longer than that goes alone); each cut to its own longest row (select).
        Sorting puts rows of like length together, so a short completion is not padded to the
        longest of the whole batch (docs/performance.md, "Padding and the logits"). Returns (indices of its rows in
        self, micro-batch) pairs: the indices put per-row results back in order."""
        lengths = self.lengths().tolist()
        order = sorted(range(len(self)), key=lambda i: -lengths[i])  # stable: ties keep their order
        groups = [[]]
        for i in order:
            group = groups[-1]  # group[0] is its longest row
            if group and (len(group) == rows or (tokens > 0 and (len(group) + 1) * lengths[group[0]] > tokens)):
                groups.append([])
            groups[-1].append(i)
        return [(g, self.select(g)) for g in groups]

    def to(self, device) -> "Experience":
        """The tensors on `device` (media stay where they are: the forward pass moves them)."""
        move = {f.name: getattr(self, f.name) for f in fields(self)}
        return Experience(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in move.items()})


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x where mask is 1. dim=None: over everything."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """Formula 1. rewards (B, M) -> advantages (B, M)."""
    centered = rewards - rewards.mean(dim=1, keepdim=True)  # (B, M)
    if scale == "group":
        return centered / (rewards.std(dim=1, keepdim=True) + eps)
    if scale == "batch":
        return centered / (rewards.std() + eps)
    if scale == "none":
        return centered
    raise ValueError(f"unknown advantage scale {scale!r}: use group, batch or none")


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Formula 2. logits (B*M, T, V) predicting tokens (B*M, T) -> logp (B*M, T), as
    z[y] - logsumexp(z) with z = logits / tau in float32, one row at a time: the whole batch's float32
    log-softmax would be one more (B*M, T, V) copy per step of the formula (4 bytes an entry: 1.9 GB
    for one 3k-token completion of Qwen's 152k vocabulary), where a row needs its own only."""
    rows = []
    for row_logits, row_tokens in zip(logits, tokens):  # (T, V), (T,)
        z = row_logits.float() if temperature == 1.0 else row_logits.float() / temperature  # (T, V)
        rows.append(z.gather(-1, row_tokens[:, None]).squeeze(-1) - z.logsumexp(-1))  # (T,)
    return torch.stack(rows)  # (B*M, T)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the sampling distribution at each position, (B*M, T, V) -> (B*M, T), row by row.
    For logging only: call it without gradient."""
    rows = []
    for row_logits in logits:
        logp = (row_logits.float() / temperature).log_softmax(-1)  # (T, V)
        rows.append(-(logp.exp() * logp).sum(-1))
    return torch.stack(rows)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Formula 4, per token: exp(ref - logp) - (ref - logp) - 1."""
    delta = ref_logp - logp
    return delta.exp() - delta - 1


def aggregate(loss: torch.Tensor, mask: torch.Tensor, how: str = "token-mean") -> torch.Tensor:
    """Formula 5. loss, mask: (B*M, T) -> scalar."""
    if how == "token-mean":
        return masked_mean(loss, mask)
    if how == "seq-mean-token-mean":
        return masked_mean(loss, mask, dim=1).mean()
    raise ValueError(f"unknown loss aggregation {how!r}: use token-mean or seq-mean-token-mean")


def policy_loss(logp: torch.Tensor, batch: Experience, eps_low: float = 0.2, eps_high: float = 0.2,
                kl_coef: float = 0.0, agg: str = "token-mean", is_cap: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Formulas 3-5. logp (B*M, T): the current policy's log-probs of batch's targets (with gradient);
    batch: old_logp, advantages and mask (+ ref_logp for the KL, + sampler_logp when is_cap > 0).
    Returns (loss, stats: clip_frac, and kl / is_weight when those terms are on)."""
    adv = batch.advantages[:, None]  # (B*M, 1): one advantage for every token of a completion
    ratio = (logp - batch.old_logp).exp()  # (B*M, T)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.min(unclipped, clipped)  # (B*M, T)
    stats = {"clip_frac": masked_mean((clipped < unclipped).float(), batch.mask).item()}
    if is_cap > 0 and batch.sampler_logp is not None:
        w = (batch.old_logp - batch.sampler_logp).exp().clamp(max=is_cap).detach()  # (B*M, T)
        per_token = w * per_token
        stats["is_weight"] = masked_mean(w, batch.mask).item()
    if batch.ref_logp is not None:
        kl = kl_k3(logp, batch.ref_logp)  # (B*M, T)
        per_token = per_token + kl_coef * kl
        stats["kl"] = masked_mean(kl, batch.mask).item()
    return aggregate(per_token, batch.mask, agg), stats
