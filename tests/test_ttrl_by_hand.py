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
    # A batch is cut into mini-batches (rows) and micro-batches (split) along its rows, every field alike.
    batch = grpo.Experience(input_ids=torch.arange(10).reshape(5, 2), attention_mask=torch.ones(5, 2),
                            mask=torch.ones(5, 1), advantages=torch.arange(5.0), media=[{}] * 5)
    parts = batch.split(2)
    assert [len(p) for p in parts] == [2, 2, 1]
    assert parts[2].advantages.tolist() == [4.0] and parts[2].old_logp is None and parts[1].targets.tolist() == [[5], [7]]
