"""How long is the code a student reads? The README's reading table, counted.

    python projects/reading_path.py

PATH is the table "Read the code in this order" in README.md, in order: the algorithm (steps 1-7 and
the loop that calls them). MAIN_NEEDS is what main() calls besides, in train.py: setting up the run,
evaluating, the run folder. Lines are counted from each function's or class's first line to its
last, docstring and comments included, as a reader meets them. tests/test_readme.py checks that the
README names exactly PATH's entries and states these counts.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PATH = [  # (file, function or class), in the README table's order
    ("train.py", "main"),
    ("train.py", "ttrl_step"), ("train.py", "Learner"), ("train.py", "OneProcess"),
    ("sample.py", "HFEngine"), ("sample.py", "Rollout"), ("sample.py", "step_seed"), ("sample.py", "request_seed"),
    ("answers.py", "extract_answer"), ("answers.py", "majority_vote"), ("answers.py", "Vote"), ("rewards.py", "REWARDS"),
    ("rewards.py", "majority"), ("rewards.py", "RewardContext"),
    ("grpo.py", "group_advantages"),
    ("train.py", "make_experience"), ("train.py", "collate"), ("train.py", "sequence_logprobs"),
    ("train.py", "no_grad_logprobs"), ("grpo.py", "Experience"), ("grpo.py", "token_logprobs"), ("grpo.py", "policy_loss"),
    ("train.py", "update_policy"), ("train.py", "has_signal"),
    ("monitor.py", "step_metrics"),
]
MAIN_NEEDS = [("train.py", name) for name in (
    "Run", "setup", "resume_point", "setup_training", "lr_lambda", "next_questions", "evaluate_run",
    "write_step", "check_update", "save_checkpoint", "finish", "Clock")]


def lines(file: str, name: str) -> int:
    """Lines of the top-level function, class or assignment `name` in `file` (decorators included)."""
    for node in ast.parse((REPO / file).read_text()).body:
        names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)] + [getattr(node, "name", None)]
        if name in names:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            return node.end_lineno - first + 1
    raise SystemExit(f"{file}: no top-level {name}")


def counts() -> dict:
    path = sum(lines(f, n) for f, n in PATH)
    return {"path": path, "main_end_to_end": path + sum(lines(f, n) for f, n in MAIN_NEEDS)}


if __name__ == "__main__":
    for f, n in PATH + MAIN_NEEDS:
        print(f"{lines(f, n):5d}  {f}: {n}" + ("" if (f, n) in PATH else "   (main needs it)"))
    c = counts()
    print(f"\nthe reading path: {c['path']} lines; main end to end (with what it needs): {c['main_end_to_end']} lines")
