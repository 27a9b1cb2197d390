"""Several processes: train.py as K copies of itself, one per GPU (torchrun data parallelism).
A single-process run never needs this file: every helper returns its input unchanged at world 1.

    torchrun --nproc_per_node 4 train.py --preset ttrl-math500        # 4 GPUs on one machine
    torchrun --nproc_per_node 8 train.py --preset ttrl-aime24 --model Qwen/Qwen2.5-Math-7B --fsdp
    python -m torch.distributed.run --nproc_per_node 2 train.py --engine hf --max-steps 2   # 2 CPU processes
    python -m pytest tests/infra/test_distributed.py -q                # the CPU checks (gloo, 2 processes)

torchrun starts K processes and tells each its place in environment variables (WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); `init` joins them into PyTorch's process group (NCCL on GPUs,
gloo on CPU). What each rank does in train.py:
  - samples, rewards and trains its share of a step's prompts (`shard`: every rank derives the same
    global list from the same seed and takes every K-th prompt), with its own rollout engine;
  - keeps a full replica of the policy (DDP: gradients averaged in one all-reduce per update) or a
    1/K slice of it (--fsdp: FSDP2's fully_shard, for models whose trainer state does not fit a GPU);
  - takes the same optimizer step, so every rank's weights and engine stay identical;
  - leaves the run folder to rank 0 (`is_main`): metrics are reduced across ranks and written once.
Without torchrun (no WORLD_SIZE) nothing starts a process group: world 1, rank 0, and every helper
returns its input unchanged, so `python train.py` runs exactly as a single process always did.
"""
import contextlib
import inspect
import math
import os
import re
from datetime import timedelta

import torch
import torch.distributed as td

from checkpoint import failpoint

world, rank, local_rank = 1, 0, 0
launched = False  # started by torchrun (True even with --nproc_per_node 1: the distributed code path)


def init(device: str, timeout_minutes: float = 60.0) -> None:
    """Join torchrun's process group. On GPUs each rank owns cuda:LOCAL_RANK: "cuda" then means that
    device everywhere (the trainer, the engine), so the run's --device stays the plain "cuda".
    timeout_minutes: how long a collective waits (NCCL's default, 10 minutes, is shorter than rank 0
    writing a 7B checkpoint while the others wait in a barrier)."""
    global world, rank, local_rank, launched
    if "WORLD_SIZE" not in os.environ:
        return
    launched = True
    world, rank, local_rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    timeout = timedelta(minutes=timeout_minutes)
    if not device.startswith("cuda"):
        td.init_process_group("gloo", timeout=timeout)
        return
    if device != "cuda" and world > 1:
        raise SystemExit(f"--device {device} under torchrun: pass --device cuda, each rank takes cuda:LOCAL_RANK")
    gpu = torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)  # one rank may name its GPU
    torch.cuda.set_device(gpu)
    # device_id binds NCCL to this rank's GPU. Without it NCCL guesses the GPU from the rank and warns
    # that a guess can hang where ranks and GPUs do not line up; barrier() warns too (both seen on an H200).
    td.init_process_group("nccl", timeout=timeout, device_id=gpu)


def is_main() -> bool:
    return rank == 0


def print0(*a, **k) -> None:
    """print on rank 0 only: one log line per step, not K."""
    if rank == 0:
        print(*a, **k, flush=True)


def shard(items: list) -> list:
    """This rank's share: items rank, rank + K, rank + 2K, ... Strided, not contiguous, so that the
    u-th mini-batch of every rank together is the u-th mini-batch of a 1-rank run (train.py slices each
    rank's share into --updates-per-step parts): with P prompts, U updates and P/U a multiple of K,
    the K ranks' slices u hold exactly the global prompts [u*P/U, (u+1)*P/U)."""
    return list(items)[rank::world]


def unshard(parts: list[list]) -> list:
    """Inverse of shard: parts[r] = rank r's share -> the global list, in the global order."""
    out = [None] * sum(map(len, parts))
    for r, part in enumerate(parts):
        out[r::len(parts)] = part
    return out


def all_gather_shards(local: list) -> list:
    """Every rank's share of a list -> the whole list, in global order, on every rank."""
    if world == 1:
        return local
    parts = [None] * world
    td.all_gather_object(parts, local)
    return unshard(parts)


def gather_shards(local: list) -> list | None:
    """Every rank's share -> the whole list on rank 0 (None elsewhere): for big records (evaluation)."""
    if world == 1:
        return local
    parts = [None] * world if rank == 0 else None
    td.gather_object(local, parts, dst=0)
    return unshard(parts) if rank == 0 else None


def broadcast(obj):
    """Rank 0's object on every rank (e.g. the run folder's default name, from rank 0's clock)."""
    if world == 1:
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn, *args):
    """fn(*args) on rank 0 alone (e.g. taking the run folder's lock), its result there (None on the
    others). Its one-line error (SystemExit) stops every rank alike: the others would otherwise wait in
    the next collective until --dist-timeout."""
    result, error = None, None
    if rank == 0:
        try:
            result = fn(*args)
        except SystemExit as e:
            error = str(e)
    error = broadcast(error)
    if error:
        raise SystemExit(error)
    return result


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first, the others after it: one writer fills a cache (the embedded
    model's build) and the rest read it."""
    if rank != 0:
        barrier()
    yield
    if rank == 0:
        barrier()


def all_gather(obj) -> list:
    """One object from each rank -> [rank 0's, rank 1's, ...] on every rank."""
    if world == 1:
        return [obj]
    out = [None] * world
    td.all_gather_object(out, obj)
    return out


def all_sum(x):
    """Sum of a number (or 0-d tensor) over ranks; the input itself at world 1 (bit for bit)."""
    if world == 1:
        return x
    t = torch.as_tensor(x, dtype=torch.float64).detach().clone().reshape(1).to(_comm_device())
    td.all_reduce(t)
    return t.to(x.device, x.dtype).reshape(x.shape) if torch.is_tensor(x) else t.item()


def all_mean(x: float) -> float:
    return x if world == 1 else all_sum(x) / world


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """grpo.masked_mean over the tokens of every rank."""
    if world == 1:
        return ((x * mask).sum() / mask.sum().clamp(min=1)).item()
    return all_sum((x * mask).sum().item()) / max(all_sum(mask.sum().item()), 1.0)


def _comm_device():
    return torch.device("cuda", torch.cuda.current_device()) if td.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if world > 1:
        td.barrier()


@contextlib.contextmanager
def stop_when_a_rank_is_lost(where):
    """A collective fails on every other rank when one rank's process ends (killed, out of memory, a
    bug of its own: gloo sees its connection close) or stops answering (--dist-timeout passes). Each
    remaining rank then stops with one line instead of a traceback about sockets; where() says where
    the run stood and how to resume it (checkpoint.Signals.where). The lost rank's own output says why."""
    try:
        yield
    except Exception as e:
        if world == 1 or not lost_contact(e):
            raise
        with contextlib.suppress(Exception):  # gloo, left with a collective that never ends, could abort the exit
            td.destroy_process_group()
        reason = re.sub(r"^\[[^\]]*\] ", "", str(e).strip().splitlines()[0]).split(". ")[0][:160]  # gloo's source path off
        raise SystemExit(f"rank {rank}: lost contact with another rank ({reason}): a process ended or gave no answer within "
                         f"--dist-timeout; stopped {where()}") from None


def lost_contact(e: BaseException) -> bool:
    """Did this exception come from a collective that lost its peers (not from this rank's own code)?
    NCCL and the rendezvous store raise torch.distributed's DistError; gloo a RuntimeError naming its
    transport (gloo/transport/...: a closed connection, a timeout)."""
    return isinstance(e, td.DistError) or (isinstance(e, RuntimeError) and "gloo/transport" in str(e))


def teardown(engines=()) -> None:
    """Leave the process group once every rank is done (rank 0 may still be writing the run folder).
    A vLLM engine joined the group and destroys it when it shuts down: it goes first. Without
    torchrun this does nothing: a process group that exists then is a vLLM engine's own."""
    if not launched:
        return
    td.barrier()
    for engine in engines:
        if hasattr(engine, "close"):
            engine.close()
    if td.is_initialized():
        td.destroy_process_group()


# ----------------------------------------------------------------------------- the step across ranks
class Ranks:
    """train.py's step meets the other ranks through this object: the methods of train.OneProcess
    (which hands every input back), here with collectives behind them. share: this rank's places in
    each step's B questions; engine_model: --fsdp with the hf engine, the engine's own full copy."""

    def __init__(self, share: list[int], fsdp: bool, engine_model=None):
        self.share, self.fsdp, self.engine_model = share, fsdp, engine_model
        self.positions = share  # the engines seed each prompt by its place in the step (sample.request_seed)

    def gather(self, groups: list) -> list:
        failpoint("rank-gather")  # tests/infra/test_distributed.py: a rank lost mid-step
        return all_gather_shards(groups)

    def mine(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[self.share]

    def sum(self, x):
        return all_sum(x)

    def mean(self, x):
        return all_mean(x)

    def grad_sync(self, model, last: bool):
        return grad_sync(model, last)

    def clip_grad_norm(self, model, max_norm: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP returns a DTensor

    def weight_norm(self, model) -> float:
        """The global L2 norm of the weights: FSDP's sharded ones (DTensors) reduced over every rank's
        shards, together with those it left whole (plain tensors, the same on every rank)."""
        params = [p.detach() for p in model.parameters()]
        norms = []
        for group in ([p for p in params if hasattr(p, "full_tensor")], [p for p in params if not hasattr(p, "full_tensor")]):
            if group:
                norm = torch.nn.utils.get_total_norm(group)
                norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))
        return math.hypot(*norms)

    def push_weights(self, engine, model) -> None:
        """Step 6: the engine gets the whole new weights (--fsdp: gathered from the shards)."""
        if self.fsdp:
            push_sharded_weights(engine, model, self.engine_model)
        else:
            engine.sync(unwrap(model))  # DDP: the replica inside the wrapper


# ----------------------------------------------------------------------------- the model
def wrap(model, fsdp: bool):
    """The module the loss backpropagates through. DDP: a full replica per rank, gradients averaged
    across ranks in the last backward of each update. FSDP2 (fully_shard, in place): each rank holds
    1/K of every parameter, gradient and AdamW moment; layers are gathered one at a time for forward
    and backward. forward_sync_buffers=False: the only buffers (rotary frequencies) are constants, and
    a broadcast at every forward would be a collective that ranks must call equally often."""
    if not launched:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None:
            raise SystemExit(f"--fsdp: {type(model).__name__} has no .model.layers to shard one by one")
        for layer in layers:  # one communication unit per decoder layer: only one layer is ever whole
            fully_shard(layer)
        return fully_shard(model)  # the rest (embeddings, final norm, head) as one unit
    from torch.nn.parallel import DistributedDataParallel
    ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=ids, **no_buffer_sync(DistributedDataParallel))


def no_buffer_sync(ddp_class) -> dict:
    """DDP's keyword for "no buffer broadcast at every forward": forward_sync_buffers from torch 2.13
    on (broadcast_buffers is deprecated there), broadcast_buffers before (torch 2.11 on a GPU install)."""
    if "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def unwrap(model):
    """The HF module inside a DDP wrapper (FSDP2 shards in place: the module is itself)."""
    return getattr(model, "module", model)


def is_fsdp(model) -> bool:
    return hasattr(model, "set_requires_gradient_sync")


def grad_sync(model, sync: bool):
    """Context for one micro-batch's forward + backward: all-reduce gradients only when sync (the last
    micro-batch of an update); the others accumulate locally, so an update costs one all-reduce."""
    if sync or not launched:
        return contextlib.nullcontext()
    if is_fsdp(model):
        @contextlib.contextmanager
        def off():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        return off()
    return model.no_sync()


def full_weights(model):
    """(name, whole tensor) pairs for the engine sync, one tensor at a time: under FSDP each is gathered
    from the shards when it is reached (a collective: every rank iterates in the same order), so
    the sync never holds more than one whole tensor beside the shards."""
    for name, tensor in unwrap(model).state_dict().items():
        yield name, tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def push_sharded_weights(engine, trainer, engine_model=None) -> None:
    """Step 6 under --fsdp, on every rank: the engine gets the whole new weights, gathered from the
    shards one tensor at a time (identical on every rank). The hf engine samples from its own full
    copy (`engine_model`, filled tensor by tensor); vLLM takes the stream of gathered tensors."""
    if engine.name == "hf":
        own = engine_model.state_dict()
        with torch.no_grad():
            for name, tensor in full_weights(trainer):
                own[name].copy_(tensor)
        engine.sync(engine_model)
    else:
        engine.sync(full_weights(trainer))


def training_state(model, opt) -> tuple[dict, list[dict], dict | None]:
    """What a checkpoint needs from every rank (a collective: all ranks call it): AdamW's full state,
    every rank's RNG states, and under FSDP the whole weights (None otherwise: the module has them)."""
    from checkpoint import rng_state
    opt_state, rngs = optimizer_state(model, opt), all_gather(rng_state())
    return opt_state, rngs, full_state_dict(model) if is_fsdp(model) else None


def full_state_dict(model) -> dict:
    """The whole weights for a checkpoint, on rank 0 (in CPU memory under FSDP: gathered from the
    shards, a collective all ranks call; the other ranks get {}). Otherwise the module's state dict."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        # A tied head (lm_head = embeddings) comes back as two gathered copies; one tensor under both
        # names again, as in module.state_dict(), so save_pretrained writes it once.
        for name, source in getattr(model, "all_tied_weights_keys", {}).items():
            if name in full and source in full:
                full[name] = full[source]
        return full
    return unwrap(model).state_dict()


def optimizer_state(model, opt) -> dict:
    """AdamW's state as a single process would hold it, for rank 0 to save. FSDP: gathered from the
    shards into rank 0's CPU memory (a collective; the other ranks get {}). DDP: every rank's state
    is the same, so rank 0's own is it."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
        return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return opt.state_dict()


def load_optimizer_state(model, opt, state: dict) -> None:
    """Inverse of optimizer_state: every rank loads the same full state (FSDP keeps its slice)."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
        set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))
    else:
        opt.load_state_dict(state)
