"""Rollouts: n sampled completions per prompt, with token ids, text and per-token log-probs.

    python sample.py                                   # 4 samples for 2 tiny-math prompts
    python sample.py --model path/or/hub-name --n 8 --temperature 0.6

Every engine has the same two calls, so train.py and eval.py do not care which one runs:
    rollouts = engine.generate(prompts, n=16, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)
        prompts:  list of dicts {"text": str}  (images / audio join as extra keys later)
        returns:  rollouts[i][j] = j-th sample for prompt i, a `Rollout`
    engine.sync(model)   # make the engine sample from the trainer's current weights

`logprobs` are the sampler's log-probabilities of the tokens it drew, *after* temperature and top-p
(the distribution the tokens were really drawn from). GRPO's importance ratio needs exactly that.

Scope: the transformers `generate` engine ("hf"). It shares the policy module with the trainer, so
`sync` has nothing to copy. temperature 0 means greedy.
"""
import argparse
from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    prompt_ids: list[int]
    ids: list[int]  # completion tokens, the EOS included when the model emitted it
    text: str  # decoded completion, special tokens dropped
    logprobs: list[float]  # sampler log-prob of each completion token (same length as ids)
    truncated: bool  # True if max_tokens ran out before EOS


class HFEngine:
    """transformers `generate`, batched over (prompt, sample) pairs."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 256):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size

    def sync(self, model) -> None:
        self.model = model  # same module object as the trainer's: nothing to copy

    @torch.no_grad()
    def generate(self, prompts: list[dict], n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int = 64, seed: int | None = None) -> list[list[Rollout]]:
        if seed is not None:
            torch.manual_seed(seed)
        prompt_ids = [self.tok(p["text"])["input_ids"] for p in prompts]
        flat = [ids for ids in prompt_ids for _ in range(n)]  # prompt i repeated n times
        out: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(flat), self.batch_size):
            out += self._generate_batch(flat[start:start + self.batch_size], temperature, top_p, max_tokens)
        self.model.train(was_training)
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _generate_batch(self, batch: list[list[int]], temperature, top_p, max_tokens) -> list[Rollout]:
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        width = max(map(len, batch))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch])  # (b, P) left-padded
        attention_mask = (torch.arange(width) >= torch.tensor([width - len(x) for x in batch])[:, None]).long()
        input_ids, attention_mask = input_ids.to(self.model.device), attention_mask.to(self.model.device)
        greedy = temperature == 0
        gen = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_tokens,
            do_sample=not greedy, temperature=None if greedy else temperature,
            top_p=None if greedy else top_p, top_k=None, pad_token_id=pad, eos_token_id=eos,
            output_scores=True, return_dict_in_generate=True,
        )
        new = gen.sequences[:, width:]  # (b, L)
        # `scores` are the logits after temperature / top-p warping, one (b, V) tensor per position
        logp = torch.stack(gen.scores, 1).float().log_softmax(-1)  # (b, L, V)
        logp = logp.gather(-1, new[..., None]).squeeze(-1)  # (b, L)
        rollouts = []
        for i, prompt in enumerate(batch):
            ids = new[i].tolist()
            truncated = eos not in ids
            length = len(ids) if truncated else ids.index(eos) + 1
            ids = ids[:length]
            rollouts.append(Rollout(prompt, ids, self.tok.decode(ids, skip_special_tokens=True),
                                    logp[i, :length].tolist(), truncated))
        return rollouts


def load_policy(name_or_path: str, dtype: str = "float32", device: str = "cpu"):
    """Load model + tokenizer from a local folder or a hub name; errors name the flag."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=getattr(torch, dtype)).to(device)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--model {name_or_path}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0]})")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # generation needs a pad id; EOS is the usual stand-in
    return model, tok


if __name__ == "__main__":
    import tinymath

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-math", help="model folder or hub name ('tiny-math' = the embedded model)")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max completion tokens")
    args = ap.parse_args()
    path = str(tinymath.get_model()) if args.model == "tiny-math" else args.model
    model, tok = load_policy(path)
    prompts = [{"text": tinymath.prompt_text(r["question"])} for r in tinymath.test_split()[:2]]
    for p, group in zip(prompts, HFEngine(model, tok).generate(prompts, args.n, args.temperature, max_tokens=args.max_tokens, seed=0)):
        for r in group:
            print(repr(p["text"] + r.text), f"sum logp={sum(r.logprobs):.2f}", "TRUNCATED" if r.truncated else "")
