"""How an embedded model does on its clean test inputs and on the shifted ones test-time RL adapts to.

    python projects/check_shift.py tiny-digits          # the tiny LLaVA: clean vs shifted digit images
    python projects/check_shift.py tiny-sounds --k 8    # the tiny Qwen2-Audio: clean vs shifted clips
    python projects/check_shift.py tiny-clips           # the tiny video LLaVA: clean vs shifted clips

Builds (or reuses) the model (data/tasks.py), then runs eval.py's metrics at T = 1 on both splits:
the shift should cost accuracy and make the samples disagree, which is what test-time RL feeds on.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: its modules by name
import data.prompts  # noqa: E402
import data.tasks  # noqa: E402
from data import media  # noqa: E402
from config import PRESETS  # noqa: E402
from eval import evaluate, format_summary  # noqa: E402
from sample import HFEngine, load_policy, load_processor  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("task", choices=["tiny-digits", "tiny-sounds", "tiny-clips"], help="the embedded task whose model to check")
ap.add_argument("--k", type=int, default=16, help="samples per input for avg@k / maj@k")
args = ap.parse_args()

task = data.tasks.TASKS[args.task]
path = data.tasks.resolve_model(args.task)
print(path)
model, tok = load_policy(path)
processor = load_processor(model)
engine = HFEngine(model, tok, processor=processor)
fmt = data.tasks.answer_format(args.task, None)
for shifted in (False, True):
    rows = task.test_split(shifted)
    for i, r in enumerate(rows, 1):  # a clip's frames as train.py samples them (the preset's --video-frames)
        if "video" in r:
            r["video"] = media.open_video(r["video"], args.task, i, task.VIDEO_FRAMES)
    prompts = data.prompts.make_prompts(rows, tok, path, args.task, processor=processor, answer_format=fmt)
    summary, _ = evaluate(engine, prompts, [r["answer"] for r in rows], k=args.k, temperature=1.0, top_p=1.0,
                          max_tokens=PRESETS[args.task]["max_tokens"], answer_format=fmt,
                          checker=data.tasks.checker(args.task, fmt))
    print(f"{'shifted' if shifted else 'clean'} test inputs (T=1): {format_summary(summary)}")
