"""eval.py's metrics. Run: python -m pytest tests/test_eval.py -q"""
import itertools
import math

import pytest

import numpy as np

from eval import bootstrap_ci, evaluate, model_list, pass_at_k
from sample import Rollout


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 2), (6, 3, 4), (8, 1, 8), (7, 5, 3), (4, 4, 2)])
def test_pass_at_k_matches_brute_force(n, c, k):
    # Enumerate every k-subset of n samples (c of them correct) and count the subsets with a hit.
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), brute, rel_tol=1e-12)


class FixedEngine:
    """Returns canned completions: greedy text for n=1 calls, the sample list otherwise."""

    def __init__(self, greedy, samples):
        self.greedy, self.samples = greedy, samples

    def generate(self, prompts, n, temperature, top_p=1.0, max_tokens=64, seed=None):
        texts = self.greedy if temperature == 0 else self.samples
        return [[Rollout([], [], t, [], False) for t in (texts[i] if n > 1 else [texts[i]])] for i in range(len(prompts))]


def test_evaluate_hand_computed():
    # Q1 (truth 5): 1 of 4 samples right, majority says 7 (wrong), greedy right.
    # Q2 (truth 1/2): 3 of 4 right in two surface forms, majority right, greedy wrong.
    engine = FixedEngine(
        greedy=["\\boxed{5}", "\\boxed{3}"],
        samples=[["\\boxed{7}", "\\boxed{7}", "\\boxed{5}", "no answer"],
                 ["\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{2}", "\\boxed{0.5}"]],
    )
    summary, records = evaluate(engine, [{"text": "q1"}, {"text": "q2"}], ["5", "1/2"], k=4)
    ci = summary.pop("ci95")
    # pass@j with n = 4: Q1 (c=1) 1/4, 1/2, 1; Q2 (c=3) 3/4, 1, 1
    truth_based = {k: summary.pop(k) for k in ["greedy", "avg@4", "maj@4", "pass@1", "pass@2", "pass@4"]}
    assert truth_based == {"greedy": 0.5, "avg@4": (0.25 + 0.75) / 2, "maj@4": 0.5, "pass@1": 0.5,
                           "pass@2": 0.75, "pass@4": 1.0}
    # label-free: Q1's answers 7, 7, 5, none -> majority 2/4, 2 distinct, shares (1/2, 1/4, 1/4 for "no answer");
    # Q2's 0.5 (three forms), 2 -> majority 3/4, 2 distinct, shares (3/4, 1/4); the canned replies are empty
    h = lambda *p: -sum(x * math.log(x) for x in p)  # entropy in nats
    assert summary.pop("majority_ratio") == (0.5 + 0.75) / 2 and summary.pop("distinct_answers") == 2.0
    assert summary.pop("answer_entropy") == pytest.approx((h(0.5, 0.25, 0.25) + h(0.75, 0.25)) / 2)
    assert summary == {"n_questions": 2, "n_labelled": 2, "response_len": 0.0, "truncated": 0.0}
    assert ci["pass@4"] == [1.0, 1.0] and ci["greedy"] == [0.0, 1.0]
    assert records[0]["vote"] == "7" and records[1]["vote"] == "0.5"
    assert records[0]["correct"] == [False, False, True, False]


def test_bootstrap_matches_scipy():
    # Our percentile bootstrap of a mean against scipy's (same method, independent resamples).
    from scipy.stats import bootstrap

    x = np.random.default_rng(3).random(60) < 0.4  # 60 questions, ~40% right
    ours = bootstrap_ci({"acc": x}, n_boot=20000, seed=1)["acc"]
    ref = bootstrap((x.astype(float),), np.mean, n_resamples=20000, method="percentile", random_state=2).confidence_interval
    assert abs(ours[0] - ref.low) < 0.02 and abs(ours[1] - ref.high) < 0.02
    assert ours[0] < x.mean() < ours[1]
    assert bootstrap_ci({"acc": np.ones(5)})["acc"] == [1.0, 1.0]


def test_run_folder_expands_to_checkpoints_then_final(tmp_path):
    run = tmp_path / "run"
    for d in ["checkpoints/step_000020", "checkpoints/step_000010", "checkpoints/step_000030.tmp", "final"]:
        (run / d).mkdir(parents=True)
    (run / "metrics.jsonl").write_text("")
    assert model_list([str(run), "other/model"]) == [str(run / "checkpoints/step_000010"),
                                                     str(run / "checkpoints/step_000020"), str(run / "final"), "other/model"]
    # the last step's checkpoint holds final/'s weights: evaluated once, as final/
    (run / "metrics.jsonl").write_text('{"step": 19}\n{"step": 20}\n')
    assert model_list([str(run)]) == [str(run / "checkpoints/step_000010"), str(run / "final")]


def test_cli_on_a_run_folder_reports_last_and_best(tmp_path):
    # eval.py end to end (transformers engine) on a run folder whose checkpoints are the tiny model.
    import json
    import shutil

    import eval as ev
    from data import tinymath

    run = tmp_path / "run"
    for d in ["checkpoints/step_000005", "final"]:
        shutil.copytree(tinymath.get_model(), run / d)
    (run / "metrics.jsonl").write_text("")
    rows = tinymath.test_split()[:6]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ev.main(["--model", str(run), "--data", str(tmp_path / "q.jsonl"), "--k", "2", "--engine", "hf",
                      "--out", str(tmp_path / "out")])
    assert [m["model"] for m in report["models"]] == [str(run / "checkpoints/step_000005"), str(run / "final")]
    assert report["last"] == str(run / "final") and report["best"] in (m["model"] for m in report["models"])
    assert json.loads((tmp_path / "out" / "report.json").read_text())["best_selected_by"] == "avg@2"
    lines = (tmp_path / "out" / "01_final_questions.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert len(lines) == 6 and rec["question"] == rows[0]["question"] and rec["truth"] == rows[0]["answer"]
    assert len(rec["samples"]) == len(rec["answers"]) == len(rec["correct"]) == 2


def test_text_similarity_hand_computed():
    from encoders import TfidfEncoder
    from eval import text_similarity

    bleu, per = text_similarity(["the cat sat on the mat"], ["the cat sat on the mat"], TfidfEncoder())
    assert abs(bleu - 100) < 1e-9 and per["rougeL"][0] == 1.0 and abs(per["embed_sim"][0] - 1) < 1e-6
    # LCS("the cat sat", "the cat sat down") = 3 words: P = 3/3, R = 3/4, F1 = 6/7
    _, per = text_similarity(["the cat sat", "a b"], ["the cat sat down", "c d"])
    assert abs(per["rougeL"][0] - 6 / 7) < 1e-9 and per["rougeL"][1] == 0.0
    assert text_similarity(["a b"], ["c d"])[0] == 0.0


def test_evaluate_open_ended_adds_wording_metrics():
    engine = FixedEngine(greedy=["\\boxed{three beeps}", "no box here"], samples=[["\\boxed{3}"] * 2, ["x"] * 2])
    summary, records = evaluate(engine, [{"text": "q1"}, {"text": "q2"}], ["three beeps", "here"], k=2, open_ended=True)
    assert summary["rougeL"] == (1.0 + 0.5) / 2  # "no box here" vs "here": P 1/3, R 1, F1 1/2
    assert 0 <= summary["bleu"] <= 100 and "rougeL" in summary["ci95"] and records[0]["rougeL"] == 1.0


def test_a_checkpoint_rotated_away_during_the_evaluation_is_skipped(tmp_path, monkeypatch, capsys):
    # eval.py --model RUN while RUN trains with --keep-checkpoints: a listed checkpoint is gone when its turn
    # comes. It is skipped with one line; the others are evaluated.
    import json
    import shutil

    import eval as ev
    from data import tinymath

    run = tmp_path / "run"
    for d in ["checkpoints/step_000005", "final"]:
        shutil.copytree(tinymath.get_model(), run / d)
    (run / "metrics.jsonl").write_text("")
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tinymath.test_split()[:4]))
    listed = ev.model_list
    monkeypatch.setattr(ev, "model_list", lambda names: [str(run / "checkpoints/step_000003")] + listed(names))
    report = ev.main(["--model", str(run), "--data", str(tmp_path / "q.jsonl"), "--k", "2", "--engine", "hf"])
    assert f"[1/3] {run / 'checkpoints/step_000003'}: gone since the run folder was read" in capsys.readouterr().out
    assert [m["model"] for m in report["models"]] == [str(run / "checkpoints/step_000005"), str(run / "final")]
