"""One whole TTRL step, by hand, on a group small enough to check with pencil and paper.

    python -m pytest tests/test_ttrl_by_hand.py -q

Read it as documentation: each block is one step of the README's algorithm, calling the same
functions train.ttrl_step calls, with the numbers they must give. The policy is the smallest there
is: one categorical distribution over a 3-token vocabulary ("3", "5", "?") with logits theta, and
every completion is a single token, so T = 1 and a completion's log-prob is one number.
"""
import math

import torch

import grpo
from answers import extract, majority_vote
from rewards import REWARDS, RewardContext


def test_one_ttrl_step_by_hand():
    # 1. sample: N = 4 completions of one question (B = 1): their texts and the token each drew
    texts = ["so the sum is \\boxed{3}", "\\boxed{3}", "\\boxed{5}", "I am not sure"]
    tokens = torch.tensor([[0], [0], [1], [2]])  # (B*N, T) = (4, 1): "3", "3", "5", "?"

    # 2. reward: extract each answer (the last \boxed{}; none in the 4th), vote, reward agreement
    answers = [[extract(t) for t in texts]]  # B lists of N
    assert answers == [["3", "3", "5", None]]
    votes = [majority_vote(group) for group in answers]
    assert votes[0].label == "3"  # the pseudo-label: the largest cluster (no true answer was read)
    assert votes[0].majority_ratio == 2 / 4  # the None counts in N
    rewards, labels = REWARDS["majority"](answers, RewardContext(votes))
    assert rewards.tolist() == [[1, 1, 0, 0]] and labels == ["3"]  # the None earns nothing either

    # 3. advantage: all N trained here (M = N = 4). Mean 0.5; unbiased std sqrt(4 * 0.25 / 3) = 0.577
    advantages = grpo.group_advantages(torch.tensor(rewards), eps=0.0)  # (B, M)
    a = 0.5 / math.sqrt(1 / 3)  # 0.866
    assert torch.allclose(advantages, torch.tensor([[a, a, -a, -a]]))

    # 4. loss. With one update per step the old policy is the current one: ratio rho = 1, nothing is
    # clipped, and every token's loss is -A_i. The token mean: -(a + a - a - a) / 4 = 0.
    theta = torch.zeros(3, requires_grad=True)  # uniform: p = 1/3 each
    logp = theta.log_softmax(-1)[tokens]  # (4, 1)
    batch = grpo.Experience(input_ids=None, attention_mask=None, mask=torch.ones(4, 1),
                            old_logp=logp.detach(), advantages=advantages.flatten())
    loss, stats = grpo.policy_loss(logp, batch)
    assert abs(loss.item()) < 1e-6 and stats["clip_frac"] == 0.0
    # A zero loss, yet a gradient: d loss / d theta = -(1/4) sum_i A_i (onehot(y_i) - p). The advantages
    # sum to 0, so the p term vanishes: -(1/4) [A_1 + A_2, A_3, A_4] = [-2a, a, a] / 4.
    loss.backward()
    assert torch.allclose(theta.grad, torch.tensor([-2 * a, a, a]) / 4)

    # 5. step: gradient descent moves probability to the pseudo-label, away from "5" and the non-answer
    with torch.no_grad():
        theta -= 1.0 * theta.grad
    p = theta.softmax(-1)
    assert p[0] > 1 / 3 > p[1] and torch.isclose(p[1], p[2])


def test_a_unanimous_group_teaches_nothing():
    # Every completion agrees: every reward 1, every advantage exactly 0, so the loss and its
    # gradient are 0 (train.has_signal then skips the update altogether).
    answers = [["3", "3", "3", "3"]]
    rewards, _ = REWARDS["majority"](answers, RewardContext([majority_vote(answers[0])]))
    advantages = grpo.group_advantages(torch.tensor(rewards))
    assert torch.equal(advantages, torch.zeros(1, 4))


def test_experience_rows_and_micro_batches():
    # Mini-batches (rows) are consecutive rows as they are; micro-batches sort the rows by length,
    # longest first, and cut each to its own longest row, every field alike.
    lengths = [2, 5, 3, 5, 1]  # prompt + completion tokens of each row, right-padded to L = 5
    attention = (torch.arange(5) < torch.tensor(lengths)[:, None]).long()  # (5, 5)
    ids = torch.arange(25).reshape(5, 5) * attention
    batch = grpo.Experience(input_ids=ids, attention_mask=attention, mask=attention[:, 1:].float(),
                            advantages=torch.arange(5.0), media=[{"row": i} for i in range(5)])
    assert batch.rows(1, 3).advantages.tolist() == [1.0, 2.0] and batch.rows(1, 3).input_ids.shape == (2, 5)
    parts = batch.micro_batches(2)
    assert [index for index, _ in parts] == [[1, 3], [2, 0], [4]]  # by length; ties keep their order
    assert [tuple(mb.input_ids.shape) for _, mb in parts] == [(2, 5), (2, 3), (1, 1)]
    assert [tuple(mb.mask.shape) for _, mb in parts] == [(2, 4), (2, 2), (1, 0)]
    second = parts[1][1]
    assert second.advantages.tolist() == [2.0, 0.0] and second.media == [{"row": 2}, {"row": 0}] and second.old_logp is None
    assert second.targets.tolist() == [[11, 12], [1, 0]]  # row 0's second target is padding, masked out
    assert second.mask.tolist() == [[1, 1], [1, 0]]
    # A token cap: at most 6 padded tokens (rows x longest row) per micro-batch, at most 4 rows.
    assert [index for index, _ in batch.micro_batches(4, tokens=6)] == [[1], [3], [2, 0], [4]]
    assert [index for index, _ in batch.micro_batches(4, tokens=4)] == [[1], [3], [2], [0, 4]]
