"""grpo.py against numbers worked out by hand. Run: python -m pytest tests/test_grpo.py -q"""
import math

import pytest
import torch

import grpo


def loss_batch(old_logp, advantages, mask, **kw):
    """An Experience holding only what the loss reads (no model inputs needed here)."""
    return grpo.Experience(input_ids=None, attention_mask=None, mask=mask, old_logp=old_logp, advantages=advantages, **kw)


def test_group_advantage_one_right_of_four():
    # rewards [1,0,0,0]: mean 0.25, unbiased std sqrt(((0.75)^2 + 3 * 0.25^2) / 3) = 0.5
    adv = grpo.group_advantages(torch.tensor([[1.0, 0, 0, 0]]), eps=0.0)
    assert torch.allclose(adv, torch.tensor([[1.5, -0.5, -0.5, -0.5]]))


def test_advantage_scales():
    r = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0]])
    assert torch.allclose(grpo.group_advantages(r, "none"), torch.tensor([[0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5]]))
    batch_std = r.std()  # 8 values, three ones: std = sqrt((3 * (5/8)^2 + 5 * (3/8)^2) / 7)
    assert math.isclose(batch_std.item(), math.sqrt((3 * 25 / 64 + 5 * 9 / 64) / 7), rel_tol=1e-6)
    assert torch.allclose(grpo.group_advantages(r, "batch", eps=0.0), grpo.group_advantages(r, "none") / batch_std)
    with pytest.raises(ValueError):
        grpo.group_advantages(r, "bogus")


def test_all_equal_group_gives_zero_not_nan():
    adv = grpo.group_advantages(torch.tensor([[1.0, 1, 1, 1], [0.0, 0, 0, 0]]))
    assert torch.equal(adv, torch.zeros(2, 4))


def test_token_logprobs_use_temperature():
    logits = torch.tensor([[[2.0, 0.0, 0.0]]])  # (1, 1, 3)
    tokens = torch.tensor([[0]])
    # at T = 2 the logits become [1, 0, 0]: log(e / (e + 2))
    assert math.isclose(grpo.token_logprobs(logits, tokens, 2.0).item(), math.log(math.e / (math.e + 2)), rel_tol=1e-6)


def test_entropy_of_uniform():
    assert math.isclose(grpo.token_entropy(torch.zeros(1, 1, 4)).item(), math.log(4), rel_tol=1e-6)


def test_kl_k3_values():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.0, -1.0])  # delta = [0, 1]
    assert torch.allclose(grpo.kl_k3(logp, ref), torch.tensor([0.0, math.e - 2]))


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_ratio_one_no_kl_is_minus_mean_advantage(agg):
    # Two rollouts of 3 and 1 tokens. With rho = 1 every token's loss is -A_i.
    adv = torch.tensor([1.5, -0.5])
    mask = torch.tensor([[1.0, 1, 1], [1.0, 0, 0]])
    logp = torch.randn(2, 3)
    loss, stats = grpo.policy_loss(logp, loss_batch(logp.detach(), adv, mask), agg=agg)
    # token-mean: (3 * -1.5 + 1 * 0.5) / 4 = -1.0;   seq-mean-token-mean: (-1.5 + 0.5) / 2 = -0.5
    expected = -1.0 if agg == "token-mean" else -0.5
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert stats["clip_frac"] == 0.0


def test_clipping_hand_computed():
    # A > 0 and rho = e^0.5 = 1.65 > 1.2: the clipped term 1.2 * A wins, gradient is zero.
    logp = torch.tensor([[0.5]], requires_grad=True)
    loss, stats = grpo.policy_loss(logp, loss_batch(torch.zeros(1, 1), torch.tensor([2.0]), torch.ones(1, 1)))
    assert math.isclose(loss.item(), -1.2 * 2.0, rel_tol=1e-6)
    assert stats["clip_frac"] == 1.0
    loss.backward()
    assert logp.grad.item() == 0.0
    # A < 0 and rho = e^-0.5 = 0.61 < 0.8 (eps_low): clipped to 0.8 * A; eps_high does not matter.
    loss, _ = grpo.policy_loss(torch.tensor([[-0.5]]), loss_batch(torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1)), eps_high=5.0)
    assert math.isclose(loss.item(), 0.8, rel_tol=1e-6)
    # A > 0 with eps_high = 0.28: rho = e^0.2 = 1.22 is inside the band, loss = -rho * A.
    loss, _ = grpo.policy_loss(torch.tensor([[0.2]]), loss_batch(torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1)), eps_high=0.28)
    assert math.isclose(loss.item(), -math.exp(0.2), rel_tol=1e-6)


def test_kl_added_per_token():
    logp = torch.tensor([[-2.0, -2.0]])
    ref = torch.tensor([[-1.0, -2.0]])  # k3 = [e - 2, 0], token mean (e - 2) / 2
    loss, stats = grpo.policy_loss(logp, loss_batch(logp, torch.tensor([0.0]), torch.ones(1, 2), ref_logp=ref), kl_coef=0.1)
    assert math.isclose(loss.item(), 0.1 * (math.e - 2) / 2, rel_tol=1e-6)
    assert math.isclose(stats["kl"], (math.e - 2) / 2, rel_tol=1e-6)


def test_masked_mean_ignores_padding():
    x = torch.tensor([[1.0, 100.0], [3.0, 5.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert grpo.masked_mean(x, mask).item() == 3.0
    assert torch.equal(grpo.masked_mean(x, mask, dim=1), torch.tensor([1.0, 4.0]))


def test_truncated_importance_weight():
    # w = min(exp(old - sampler), cap): a token the sampler found 4x less likely counts 2x (cap 2),
    # one it found 2x more likely counts 0.5x. With rho = 1 the loss per token is -w * A.
    old = torch.zeros(1, 2)
    sampler = torch.tensor([[-math.log(4), math.log(2)]])
    loss, stats = grpo.policy_loss(old, loss_batch(old, torch.tensor([1.0]), torch.ones(1, 2), sampler_logp=sampler), is_cap=2.0)
    assert math.isclose(loss.item(), -(2.0 + 0.5) / 2, rel_tol=1e-6)
    assert math.isclose(stats["is_weight"], 1.25, rel_tol=1e-6)
    # is_cap = 0 turns the correction off: w = 1
    loss, stats = grpo.policy_loss(old, loss_batch(old, torch.tensor([1.0]), torch.ones(1, 2), sampler_logp=sampler))
    assert math.isclose(loss.item(), -1.0, rel_tol=1e-6) and "is_weight" not in stats


@pytest.mark.parametrize("dtype,temperature", [(torch.float32, 1.0), (torch.float32, 0.7), (torch.bfloat16, 1.0)])
def test_row_by_row_logprobs_equal_the_full_log_softmax(dtype, temperature):
    # token_logprobs works one row at a time (memory); values and gradients are the full formula's.
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 5, 50)).to(dtype).requires_grad_()
    tokens = torch.randint(0, 50, (3, 5))
    full = (logits.float() / temperature).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    (grad_full,) = torch.autograd.grad(full.sum(), logits)
    rows = grpo.token_logprobs(logits, tokens, temperature)
    (grad_rows,) = torch.autograd.grad(rows.sum(), logits)
    assert torch.allclose(rows, full, atol=1e-5) and rows.dtype == torch.float32
    assert torch.allclose(grad_rows.float(), grad_full.float(), atol=1e-5 if dtype == torch.float32 else 1e-2)
    ent_full = -((logits.float() / temperature).log_softmax(-1).exp() * (logits.float() / temperature).log_softmax(-1)).sum(-1)
    assert torch.allclose(grpo.token_entropy(logits.detach(), temperature), ent_full.detach(), atol=1e-5)
