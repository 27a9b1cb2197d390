"""sample.py's pieces that need no vLLM: seeds, stop tokens, the hf engine's log-probs, weight names.

    python -m pytest tests/test_sample.py -q
"""
from pathlib import Path

import pytest
import torch

import train
from data import tinymath
from sample import (HFEngine, _ChosenLogprobs, cut_at_stop, load_policy, request_seed, stop_token_ids,
                    vllm_weight_names)


@pytest.fixture(scope="module")
def policy():
    model, tok = load_policy(str(tinymath.get_model()))
    prompts = [{"text": tinymath.prompt_text(r["question"])} for r in tinymath.test_split()[:4]]
    return model, tok, prompts


def test_no_two_samples_of_a_call_share_a_seed():
    # vLLM seeds sample j of a request with request_seed + j: every (prompt, sample) pair of a call
    # (500 questions x 64 samples, an evaluation) gets its own stream; the old base*1000 + i did not.
    n, seeds = 64, set()
    for position in range(500):
        seeds |= {(request_seed(7, position, n) + j) % 2**32 for j in range(n)}  # the CPU generator keeps 32 bits
    assert len(seeds) == 500 * 64
    old = {7 * 1000 + i + j for i in range(500) for j in range(n)}
    assert len(old) == 500 + 63  # neighbouring prompts shared 63 of their 64 streams
    # two runs' (or two steps') calls start 2^22 seeds apart: an evaluation of 500 x 64 stays clear of the next
    assert request_seed(1, 0, n) - request_seed(0, 499, n) >= n
    assert all(0 <= request_seed(s, 10**6, 64) < 2**32 for s in (0, 10**12))


def test_stop_tokens_and_cutting():
    class Tok:  # a Qwen-like vocabulary: <|endoftext|> is EOS, <|im_end|> ends a chat turn
        eos_token_id = 5

        def get_vocab(self):
            return {"<|endoftext|>": 5, "<|im_end|>": 6, "a": 7}
    assert stop_token_ids(Tok()) == [5, 6]
    assert cut_at_stop([7, 7, 6, 7, 7], [5, 6]) == ([7, 7, 6], False)  # cut after <|im_end|>, kept
    assert cut_at_stop([7, 7, 7], [5, 6]) == ([7, 7, 7], True)  # no stop token: max_tokens ran out
    _, tok = load_policy(str(tinymath.get_model()))
    assert stop_token_ids(tok) == [tok.eos_token_id]  # the embedded model has EOS only


def test_hf_engine_logprobs_equal_generate_output_scores(policy):
    # The engine keeps one (b, V) distribution at a time; the numbers must be those of generate's
    # output_scores, which keeps all of them: the processed (temperature, top-p) distribution.
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    model, tok, prompts = policy
    ids = [tok(p["text"])["input_ids"] for p in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids])
    attention = (input_ids != tok.pad_token_id).long()
    keeper = _ChosenLogprobs()
    torch.manual_seed(0)
    out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=20, do_sample=True,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, output_scores=True,
                         return_dict_in_generate=True,
                         logits_processor=LogitsProcessorList([TemperatureLogitsWarper(0.7), TopPLogitsWarper(0.9), keeper]))
    new = out.sequences[:, width:]
    full = torch.stack(out.scores, 1).float().log_softmax(-1).gather(-1, new[..., None]).squeeze(-1)  # (b, L)
    assert torch.equal(keeper.result(out.sequences), full)


def test_hf_engine_ignores_the_models_generation_config(policy):
    # A sampling setting in the model's generation_config (Qwen's instruct models ship top_k and
    # repetition_penalty) would make the engine sample from another distribution than the trainer's.
    model, tok, prompts = policy
    plain = HFEngine(model, tok).generate(prompts, 4, 1.0, seed=1, max_tokens=24)
    model.generation_config.repetition_penalty, model.generation_config.top_k = 3.0, 2
    try:
        again = HFEngine(model, tok).generate(prompts, 4, 1.0, seed=1, max_tokens=24)
    finally:
        model.generation_config.repetition_penalty, model.generation_config.top_k = 1.0, None
    assert [[r.ids for r in g] for g in plain] == [[r.ids for r in g] for g in again]
    batch = train.collate([r for g in again for r in g], tok.pad_token_id)
    with torch.no_grad():
        logp = train.sequence_logprobs(model, batch, 1.0)
    assert ((logp - batch.sampler_logp).abs() * batch.mask).max().item() < 1e-4


def test_hf_engine_stops_at_any_stop_token(policy):
    model, tok, prompts = policy
    engine = HFEngine(model, tok)
    engine.stop_ids = [tok.eos_token_id, tok.convert_tokens_to_ids("}")]  # as <|im_end|> would be
    for g in engine.generate(prompts, 4, 1.0, seed=2):
        for r in g:
            assert r.truncated or r.ids[-1] in engine.stop_ids
            assert r.ids.count(tok.convert_tokens_to_ids("}")) <= 1 and len(r.logprobs) == len(r.ids)


def test_weight_names_for_vllm():
    qwen2_audio = vllm_weight_names("Qwen2AudioForConditionalGeneration")
    assert qwen2_audio("model.language_model.layers.0.mlp.up_proj.weight") == "language_model.model.layers.0.mlp.up_proj.weight"
    assert qwen2_audio("model.audio_tower.conv1.weight") == "audio_tower.conv1.weight"
    assert qwen2_audio("model.multi_modal_projector.linear.bias") == "multi_modal_projector.linear.bias"
    assert qwen2_audio("lm_head.weight") == "language_model.lm_head.weight"
    assert vllm_weight_names("Qwen2ForCausalLM")("model.norm.weight") == "model.norm.weight"  # unchanged
    # The Omni thinker's own names, then vLLM's mapper for Qwen2.5-Omni: no "model." left at the top
    # (vLLM's error was "There is no module or parameter named 'model'"). The mapper is read from vLLM's
    # source: importing that module needs torchvision, a CUDA-only build on PyPI.
    import ast
    import importlib.util

    spec = importlib.util.find_spec("vllm")
    if spec is None:
        pytest.skip("vLLM is not installed")
    from vllm.model_executor.models.utils import WeightsMapper

    source = (Path(spec.origin).parent / "model_executor/models/qwen2_5_omni_thinker.py").read_text()
    call = next(node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", "") == "hf_to_vllm_mapper")
    mapper = WeightsMapper(orig_to_new_prefix=ast.literal_eval(call.keywords[0].value))
    omni = vllm_weight_names("Qwen2_5OmniThinkerForConditionalGeneration")
    names = ["model.layers.0.self_attn.q_proj.weight", "lm_head.weight", "audio_tower.conv1.weight", "visual.blocks.0.attn.qkv.weight"]
    assert [mapper.map_name(omni(n)) for n in names] == [
        "language_model.model.layers.0.self_attn.q_proj.weight", "language_model.lm_head.weight",
        "audio_tower.conv1.weight", "visual.blocks.0.attn.qkv.weight"]


def test_auto_engine_picks_by_measured_size(monkeypatch):
    # sample.auto_engine: hf below the CPU crossover (the embedded 0.3M model), vLLM above it or on a GPU,
    # hf for image / audio models on a CPU and whenever vLLM is missing; the reason is returned
    import sample

    model = torch.nn.Linear(10, 10)  # 110 parameters, on the CPU
    monkeypatch.setattr(sample, "vllm_available", lambda: True)
    assert sample.auto_engine(model) == ("hf", "0.0M parameters on a CPU, below the measured crossover (1M)")
    monkeypatch.setattr(sample, "CPU_VLLM_FROM_PARAMS", 100)
    assert sample.auto_engine(model)[0] == "vllm"
    assert sample.auto_engine(model, processor=object()) == ("hf", "an image / audio / video model on a CPU")
    monkeypatch.setattr(sample, "vllm_available", lambda: False)
    assert sample.auto_engine(model) == ("hf", "vLLM is not installed")
