"""The test-time setting itself: questions without answers, through training and evaluation, and the
pairwise win rate that judges open-ended answers without references.

    python -m pytest tests/test_unlabeled.py -q
"""
import json
import math

import numpy as np
import pytest

import data.files
import eval as ev
import train
from data import tinymath

TRUTH_BASED = {"label_acc", "reward_acc", "true_reward"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rows = tinymath.test_split()[:8]
    folder = tmp_path_factory.mktemp("data")
    (folder / "q.jsonl").write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in rows))
    (folder / "mixed.jsonl").write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"] if i % 2 else ""})
                                                + "\n" for i, r in enumerate(rows)))
    return folder


SMALL = ["--engine", "hf", "--max-steps", "2", "--prompts-per-step", "4", "--n-votes", "4", "--n-train", "4", "--eval-k", "2"]


def test_questions_without_answers_train_and_evaluate(files, tmp_path, capsys):
    out = train.main(["--data", str(files / "q.jsonl"), "--out", str(tmp_path / "run")] + SMALL)
    steps = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(steps) == 2 and all(not TRUTH_BASED & set(s) for s in steps)  # absent, not zero
    assert all({"majority_ratio", "distinct_answers", "answer_entropy", "response_len", "truncated_frac"} <= set(s) for s in steps)
    before, after = (json.loads((out / f"eval_{t}.json").read_text()) for t in ("before", "after"))
    for summary in (before, after):
        assert summary["n_labelled"] == 0 and not any(k.startswith(("avg@", "maj@", "pass@", "greedy")) for k in summary)
        assert 0 < summary["majority_ratio"] <= 1 and summary["n_questions"] == 8
    assert 0 <= after["votes_changed"] <= 8
    assert "no answers" in capsys.readouterr().out


def test_some_answers_are_reported_on_those_rows(files, tmp_path):
    out = train.main(["--data", str(files / "mixed.jsonl"), "--out", str(tmp_path / "run")] + SMALL)
    after = json.loads((out / "eval_after.json").read_text())
    assert after["n_labelled"] == 4 and after["n_questions"] == 8 and "avg@2" in after
    records = [json.loads(line) for line in open(out / "eval_after_questions.jsonl")]
    assert sum("avg@2" in r for r in records) == 4  # the truth-based metrics exist on the labelled rows only
    assert "accuracy on the 4 of 8 questions with an answer" in ev.format_summary(after)
    steps = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert all("label_acc" in s and s.get("labelled_groups", 4) <= 4 for s in steps)


def test_answer_columns(tmp_path):
    (tmp_path / "s.jsonl").write_text(json.dumps({"problem": "1+1", "solution": "so it is \\boxed{2}."}) + "\n")
    (row,) = data.files.load_rows(str(tmp_path / "s.jsonl"), "problem", "solution")
    assert row["answer"] == "2"  # a worked solution's last boxed answer
    with pytest.raises(SystemExit, match="no column 'answr' \\(--answer-key\\)"):  # a named column must exist
        data.files.load_rows(str(tmp_path / "s.jsonl"), "problem", "answr")
    (row,) = data.files.load_rows(str(tmp_path / "s.jsonl"), "problem")  # no "answer" column: none
    assert row["answer"] is None


def test_preference_parser():
    replies = ["A", "b.", "Response B", "**A**", "Tie", "equal", "a tie", "I think A", "", None]
    assert [ev.parse_preference(r) for r in replies] == ["A", "B", "B", "A", "tie", "tie", "tie", None, None, None]


def scripted_judge(table):
    """A stand-in for the judge model: table[(question, order)] is its reply; order "cand-A" when the
    candidate's response is shown as A (the baseline's responses start with "base")."""
    def judge(prompts):
        replies = []
        for p in prompts:
            question = p.split("Instruction: ")[1].split("\n")[0]
            order = "cand-A" if p.split("Response A:\n")[1].startswith("cand") else "cand-B"
            replies.append(table[(question, order)])
        return replies
    return judge


def test_win_rate_by_hand():
    questions = ["q1", "q2", "q3", "q4"]
    candidate, baseline = ["cand 1", "cand 2", "cand 3", "cand 4"], ["base 1", "base 2", "base 3", "base 4"]
    judge = scripted_judge({
        ("q1", "cand-A"): "A", ("q1", "cand-B"): "B",  # candidate wins in both orders: 1, 1
        ("q2", "cand-A"): "tie", ("q2", "cand-B"): "Tie.",  # ties: 0.5, 0.5
        ("q3", "cand-A"): "B", ("q3", "cand-B"): "hmm",  # a loss, and an unparseable reply (left out)
        ("q4", "cand-A"): "b", ("q4", "cand-B"): "A",  # a position-biased judge: it says "the other one" both times
    })
    judgements = ev.pairwise_judgements(questions, candidate, baseline, judge)
    assert [j["prefs"] for j in judgements] == [[1.0, 1.0], [0.5, 0.5], [0.0, None], [0.0, 0.0]]
    stats = ev.win_rates(judgements, n_boot=200, seed=0)
    # (1 + 1 + 0.5 + 0.5 + 0 + 0 + 0) / 7 judgements that could be read
    assert math.isclose(stats["win_rate"], 3 / 7)
    assert math.isclose(stats["lc_win_rate"], 3 / 7, abs_tol=1e-6)  # no length differs: the same number
    assert (stats["unparseable"], stats["ties"], stats["judgements"]) == (1, 2, 8)
    for m in ("win_rate", "lc_win_rate"):
        assert stats["ci95"][m][0] <= stats[m] <= stats["ci95"][m][1]


def test_win_rate_when_most_questions_have_no_readable_judgement():
    # One question judged (a win and a tie), nine whose both replies were unparseable: the rates read the
    # one, and the bootstrap resamples the judged questions (a resample of unjudged ones has no rate).
    judgements = [{"prefs": [1.0, 0.5], "len_diff": 3}] + [{"prefs": [None, None], "len_diff": 0}] * 9
    stats = ev.win_rates(judgements, n_boot=200, seed=0)
    assert stats["win_rate"] == 0.75 and (stats["unparseable"], stats["judgements"]) == (18, 20)
    assert stats["ci95"]["win_rate"] == [0.75, 0.75]


def test_length_controlled_win_rate_by_hand():
    # Longer answers (+5 characters) win 3 of 4, shorter ones (-5) 2 of 4: raw win rate 5/8 = 0.625. The
    # regression on the standardised difference (+1 / -1) fits those two rates exactly:
    # b0 + b1 = logit(3/4) = ln 3, b0 - b1 = logit(1/2) = 0, so at difference 0 it predicts
    # sigmoid(b0) = sigmoid(ln(3) / 2) = sqrt(3) / (1 + sqrt(3)) = 0.634.
    prefs = np.array([1, 1, 1, 0, 1, 1, 0, 0.0])
    diffs = np.array([5, 5, 5, 5, -5, -5, -5, -5.0])
    assert math.isclose(ev.length_controlled(prefs, diffs), math.sqrt(3) / (1 + math.sqrt(3)), abs_tol=1e-6)
    assert ev.length_controlled(np.ones(3), np.array([1.0, 2, 3])) == 1.0  # all wins: nothing to regress


def test_eval_win_rate_end_to_end_with_a_scripted_judge(files, tmp_path, monkeypatch):
    # The CLI path: a run folder trained on unlabeled questions against its start model. The tiny model
    # cannot judge (its replies never parse), so a scripted judge prefers the answer with the larger
    # boxed number, and its verdicts are recomputed here from the saved greedy answers.
    from answers import extract_answer

    run = train.main(["--data", str(files / "q.jsonl"), "--out", str(tmp_path / "run")] + SMALL)

    def judge_replies(args):
        def judge(prompts):
            replies = []
            for p in prompts:
                a, b = (extract_answer(p.split(f"Response {x}:\n")[1].split("\n\n")[0]) for x in "AB")
                number = lambda s: int(s) if s and s.isdigit() else -1  # noqa: E731
                replies.append("tie" if number(a) == number(b) else "A" if number(a) > number(b) else "B")
            return replies
        return judge
    monkeypatch.setattr(ev, "judge_replies", judge_replies)
    report = ev.main(["--model", str(run), "--data", str(files / "q.jsonl"), "--win-rate", "--k", "2", "--engine", "hf",
                      "--out", str(tmp_path / "eval")])
    base, final = report["models"]
    assert base["model"].endswith(tinymath.get_model().name) and "vs_baseline" in final
    pairs = [json.loads(line) for line in open(next((tmp_path / "eval").glob("*_pairwise.jsonl")))]
    prefs = [p for j in pairs for p in j["prefs"]]
    assert math.isclose(final["vs_baseline"]["win_rate"], float(np.mean(prefs)))
    assert "best" not in report  # no true answers, no best checkpoint


@pytest.mark.parametrize("data", ["q.jsonl", "mixed.jsonl"])
def test_truth_baseline_is_refused_without_answers(files, tmp_path, data):
    # --reward truth trains on the true answers: one line, before anything is written
    with pytest.raises(SystemExit, match="--reward truth is a baseline that trains on the true answers: .* have none"):
        train.main(["--data", str(files / data), "--reward", "truth", "--out", str(tmp_path / "run")] + SMALL)
    assert not (tmp_path / "run").exists()
