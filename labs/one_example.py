"""Lab 4 (TTRV, "is one example enough?"): adapting a vision-language model at test time on 1, 20 or
all of the test questions, and which reward does it.

    python labs/one_example.py            # 10 runs on tiny-digits, about 5 minutes on 2 CPU cores
    python labs/one_example.py --quick    # a smoke test, under a minute

TTRV reports that training on a single unlabeled test image already lifts accuracy on the whole test
set, and that its reward (each answer's vote share, plus a term for a confident, low-entropy answer
distribution) does better than the plain majority vote. Here, on the embedded tiny-digits task (a
tiny LLaVA reading digit images; `--preset tiny-digits`, TTRV's recipe), every run trains the same
number of steps and is evaluated on all the test questions:

  - TTRV's reward (frequency + entropy term) on 1, 20 and all questions (train.py --adapt-on);
  - on all questions: the frequency reward without the entropy term, and TTRL's majority reward.

Figure: each run's change in avg@16 (mean over --seeds; 95% interval over questions, paired with the
start model's score on the same question), and, dashed, how far the start model's maj@16 is above its
avg@16: the most a vote-based reward can hope to teach. Table: avg@16 and maj@16 after, and the change.
"""

import common  # first: puts the repository on the path

VARIANTS = {"TTRV reward, 1 question": ["--adapt-on", "1"], "TTRV reward, 20 questions": ["--adapt-on", "20"],
            "TTRV reward, all questions": [], "frequency, no entropy term, all": ["--entropy-coef", "0"],
            "TTRL majority, all": ["--reward", "majority", "--entropy-coef", "0"]}


def flags(ap):
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of each run")
    ap.add_argument("--steps", type=int, default=19, help="training steps of every run (the preset's one epoch over all questions)")


def main():
    args = common.parse(__doc__, "one_example", flags)
    base = ["--preset", "tiny-digits", "--engine", "hf", "--max-steps", str(args.steps)]
    variants = VARIANTS
    if args.quick:  # two variants, 2 steps, 4 votes, 2 evaluation samples
        base = ["--preset", "tiny-digits", "--engine", "hf", "--max-steps", "2", "--eval-k", "2", "--n-votes", "4",
                "--n-train", "4", "--prompts-per-step", "4"]
        variants, args.seeds = dict(list(VARIANTS.items())[:2]), args.seeds[:1]
    runs = {name: [common.train(args, f"{i}-seed{s}", base + change + ["--seed", str(s)]) for s in args.seeds]
            for i, (name, change) in enumerate(variants.items())}

    first = next(iter(runs.values()))
    k = common.load_config(first[0])["eval_k"]
    every = [run for folders in runs.values() for run in folders]
    start = {m: common.per_question(every, "before", f"{m}@{k}") for m in ("avg", "maj")}
    after = {name: {m: common.per_question(folders, "after", f"{m}@{k}") for m in ("avg", "maj")}
             for name, folders in runs.items()}

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(runs)
    changes = [after[n]["avg"] - start["avg"] for n in names]  # (Q,) each: paired, question by question
    common.bars(ax, names, changes, ["C0", "C0", "C0", "C1", "C2"][:len(names)])
    ax.axhline(start["maj"].mean() - start["avg"].mean(), ls="--", c="k", lw=0.8,
               label=f"start model's maj@{k} - avg@{k}: what the vote knows that one sample does not")
    ax.set_ylabel(f"change in avg@{k}, all test questions")
    ax.set_title(f"tiny-digits: adapting on few questions, and the reward (start avg@{k} {start['avg'].mean():.3f}; "
                 f"{len(args.seeds)} seed(s), 95% CI)", fontsize=10)
    ax.legend(fontsize=8)

    rows = [["start model", "", common.mean_ci(start["avg"]), common.mean_ci(start["maj"]), ""]]
    for name, folders in runs.items():
        cfg = common.load_config(folders[0])
        trained = f"{cfg['adapt_on'] or 'all'} question(s), {cfg['reward']}" + (f" + entropy {cfg['entropy_coef']}" if cfg["entropy_coef"] else "")
        rows.append([name, trained, common.mean_ci(after[name]["avg"]), common.mean_ci(after[name]["maj"]),
                     common.mean_ci(after[name]["avg"] - start["avg"])])
    common.table(args, ["run", "trained on", f"avg@{k} [95% CI]", f"maj@{k} [95% CI]", f"avg@{k} change [95% CI]"], rows,
                 f"Every run: {common.steps(first[0])[-1]['step']} steps, evaluated on all questions; means over "
                 f"{len(args.seeds)} seed(s), each question averaged over them; intervals: bootstrap over the questions.")
    common.save(args, fig)


if __name__ == "__main__":
    main()
