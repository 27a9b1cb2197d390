"""The model card: a trained model that explains itself, as README.md in final/ and in every checkpoint.

Why: final/ is a folder of weights; copied elsewhere (or pushed to the Hugging Face hub) it no longer
says where it came from. The card, in the Hugging Face format, does: a YAML header the hub reads
(base model, library, tags, the data set when it is a hub set), then what was trained (the recipe in
two lines, the reward mode, the key hyper-parameters), the evaluation before and after training with
its 95% intervals, and the command that reproduces the run. A checkpoint's card is the same, at its
step, with the evaluations made by then.
"""
import shlex
import subprocess
from pathlib import Path

from huggingface_hub import ModelCardData

import data.files
import data.tasks
from eval import markdown_table, summary_table
from rewards import REWARDS

KEY_FLAGS = ["n_votes", "n_train", "prompts_per_step", "updates_per_step", "lr", "lr_schedule", "warmup_ratio", "kl_coef",
             "eps_low", "eps_high", "temperature", "top_p", "max_tokens", "loss_agg", "adv_scale", "adapt_on", "seed"]
PAPER = {"majority": "ttrl", "frequency": "ttrv", "centroid": "op-ttrav", "cluster": "op-ttrav",
         "cluster-continuous": "op-ttrav", "judge": "op-ttrav"}  # the tag of the paper each reward mode comes from
# Flags that name the run folder or say how it is watched, not what it computes: not in the command
NOT_REPRODUCED = {"out", "resume", "restart", "start_over", "report_to"}


def model_card(args, name: str, evaluations: dict[str, dict], step: int, total_steps: int, world: int = 1) -> str:
    """README.md for the model of run `name` after `step` of its `total_steps` steps; evaluations: column
    name -> eval.summarize's dict ({"before": ..., "after": ...}; {} = not evaluated); world: processes."""
    baseline = args.reward == "truth"
    header = ModelCardData(
        base_model=args.model if hub_name(args.model) else None, library_name="transformers",
        datasets=[data.files.HUB[args.data].path] if args.data in data.files.HUB else None,
        tags=["nanottrl", "grpo", "reinforcement-learning"] + ([] if baseline else ["test-time-rl"])
        + ([PAPER[args.reward]] if args.reward in PAPER else []))
    embedded = " (nanoTTRL's embedded model, built by data/)" if args.model in data.tasks.TASKS else ""
    where = "the end of the run" if step == total_steps else f"a checkpoint at step {step} of {total_steps}"
    recipe = ("RL on the true answers with GRPO: a baseline that reads the answers, not test-time RL. For each question the "
              f"model samples N = {args.n_votes} answers; each of the first M = {args.n_train} is rewarded by the true answer."
              if baseline else
              f"Test-time RL (TTRL): for each unlabeled question the model samples N = {args.n_votes} answers, which vote; each of "
              f"the first M = {args.n_train} is rewarded by its agreement with the group, and GRPO turns the rewards into a "
              "policy update. No true answer is read in training.")
    doc = REWARDS[args.reward].__doc__ if args.reward in REWARDS else None
    reward = " ".join((doc or "").split("Label:")[0].split()) or "a reward mode of your own (rewards.REWARDS)"
    if args.entropy_coef:
        reward += f" Entropy term: {args.entropy_coef} x ({args.entropy_form})."
    flags = [["--model", f"`{args.model}`{embedded}"], ["--data", f"`{args.data}`"],
             ["steps", f"{step} of {total_steps}"]]
    flags += [[f"--{k.replace('_', '-')}", getattr(args, k)] for k in KEY_FLAGS + ["device", "dtype"]]
    version = code_version()
    lines = [
        f"---\n{header.to_yaml()}\n---\n", f"# {name}\n",
        f"`{args.model}`{embedded} trained with nanoTTRL on `{args.data}`: {where}.\n",
        "## What was trained\n", recipe + "\n", f"Reward (`--reward {args.reward}`): {reward}\n",
        markdown_table([["flag", "value"], *flags]) + "\n",
        "## Evaluation\n", evaluation_text(args, evaluations),
        "## Reproduce\n", f"```bash\n{command_line(args, world)}\n```\n",
        "Flags not shown take their defaults" + (f" in nanoTTRL `{version}`." if version else ".")
        + (" This is one of its checkpoints; `final/` holds the trained model." if step < total_steps else "") + "\n",
    ]
    return "\n".join(lines)


def evaluation_text(args, evaluations: dict[str, dict]) -> str:
    """The evaluation protocol, the table of evaluations side by side with their intervals, and TTRL's
    claim (after avg@k against before maj@k) when both are there."""
    evaluations = {k: v for k, v in evaluations.items() if v}
    if not evaluations:
        return "Not evaluated (`--eval-k 0`).\n"
    some = next(iter(evaluations.values()))
    text = (f"{args.eval_k} samples per question at temperature {args.eval_temperature}, top-p {args.eval_top_p}, and the "
            f"greedy answer, on {some['n_questions']} questions ({some['n_labelled']} with a true answer); in brackets, "
            "the 95% bootstrap interval over questions.\n\n" + markdown_table(summary_table(evaluations)) + "\n")
    k, before, after = args.eval_k, evaluations.get("before", {}), evaluations.get("after", {})
    if f"avg@{k}" in after and f"maj@{k}" in before:
        text += (f"\nTTRL's claim, after avg@{k} >= before maj@{k}: {after[f'avg@{k}']:.3f} vs {before[f'maj@{k}']:.3f} "
                 f"({'held' if after[f'avg@{k}'] >= before[f'maj@{k}'] else 'not held'}).\n")
    return text


def checkpoint_evaluations(out: Path, step: int) -> dict[str, dict]:
    """A checkpoint's columns: the evaluation before training and the newest one made by `step` (--eval-every)."""
    from monitor import evaluations

    points = evaluations(out, upto=step)
    columns = {"before": points[0]} if points and points[0]["step"] == 0 else {}
    if points and points[-1]["step"] > 0:
        columns[f"step {points[-1]['step']}"] = points[-1]
    return columns


def command_line(args, world: int = 1) -> str:
    """The command that reproduces the run: train.py with its --data, and each other flag whose value
    differs from its default (the preset's, if one was given). --device and --dtype are left to the
    machine that runs it (the card's table says what this run used)."""
    from config import parse_args

    given = ["--data", str(args.data), "--device", args.device, "--dtype", args.dtype]  # the defaults without measuring anything
    defaults = vars(parse_args((["--preset", args.preset] if args.preset else []) + given))
    words = (["torchrun", "--nproc_per_node", str(world)] if world > 1 else ["python"]) + ["train.py"]
    words += (["--preset", args.preset] if args.preset else []) + ["--data", str(args.data)]
    for key, value in vars(args).items():
        if key in NOT_REPRODUCED or key in ("preset", "data") or key not in defaults or value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, *map(str, value if isinstance(value, list) else [value])]
    return " ".join(shlex.quote(w) for w in words)


def hub_name(model: str) -> bool:
    """A Hugging Face hub id ("org/name"), not an embedded model or a folder on this machine."""
    return model not in data.tasks.TASKS and not Path(model).expanduser().exists() and len(Path(model).parts) == 2


def code_version() -> str | None:
    """nanoTTRL's git commit (+ "-dirty" with uncommitted changes), None outside a git checkout."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
