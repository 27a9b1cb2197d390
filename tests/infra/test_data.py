"""data/: the `datasets` loading path on files the tests write, bad rows, prompts, presets.

    python -m pytest tests/infra/test_data.py -q
"""
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import data.files
import data.prompts
from data import tinymath
import train

ROWS = [{"problem": "1+1", "answer": "2"}, {"problem": "Half of 1?", "answer": "\\frac{1}{2}"}]
EXPECTED = [{"question": "1+1", "answer": "2"}, {"question": "Half of 1?", "answer": "\\frac{1}{2}"}]


def write(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_every_file_type_loads_through_datasets(tmp_path, suffix):
    path = write(tmp_path / f"set{suffix}", ROWS)
    assert data.files.load_rows(path, question_key="problem") == EXPECTED


def test_json_with_a_data_field(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"data": ROWS}))
    assert data.files.load_rows(str(tmp_path / "d.json"), question_key="problem") == EXPECTED


def test_numeric_answers_become_text(tmp_path):
    # A parquet/csv answer column is often numeric: 142.0 must grade as "142", not "142.0".
    path = write(tmp_path / "n.parquet", [{"question": "q", "answer": 142.0}, {"question": "r", "answer": 0.5}])
    assert [r["answer"] for r in data.files.load_rows(path)] == ["142", "0.5"]


def test_extra_columns_ride_along(tmp_path):
    path = write(tmp_path / "x.jsonl", [{"question": "q", "answer": "1", "src": "book 2"}])
    assert data.files.load_rows(path, extra_keys={"source": "src"}) == [{"question": "q", "answer": "1", "source": "book 2"}]


def test_empty_questions_are_skipped_and_empty_answers_kept_as_none(tmp_path, capsys):
    # A question without an answer is still a question to train on (test-time RL needs no answers);
    # one without a question can be neither asked nor graded.
    rows = [{"question": "q1", "answer": "1"}, {"question": "", "answer": "2"}, {"question": "q3", "answer": None},
            {"question": "q4", "answer": "  "}, {"question": "q5", "answer": "5"}]
    loaded = data.files.load_rows(write(tmp_path / "e.jsonl", rows))
    assert [(r["question"], r["answer"]) for r in loaded] == [("q1", "1"), ("q3", None), ("q4", None), ("q5", "5")]
    out = capsys.readouterr().out
    assert "skipped 1 of 5 rows with an empty question (rows 2)" in out
    assert "2 of 4 questions have an answer: accuracy and the other truth-based metrics are computed on those" in out


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", '{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"\n', "line 2 is not valid JSON"),
    ("list.jsonl", '{"question": "a", "answer": "1"}\n[1, 2]\n', "line 2 is not a JSON object"),
    ("bad.json", '[{"question": "a"', "not valid JSON (line 1"),
    ("dict.json", '{"rows": []}', "expected a list of rows"),
    ("empty.jsonl", "", "no usable rows"),
    ("blank.jsonl", '{"question": "", "answer": "1"}\n', "no usable rows"),
])
def test_malformed_files_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(SystemExit, match=re.escape(message)) as e:
        data.files.load_rows(str(tmp_path / name))
    assert str(tmp_path / name) in str(e.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_a_file_that_is_not_utf8_names_the_byte(tmp_path, suffix):
    body = {".jsonl": '{"question": "caf\u00e9?", "answer": "1"}\n', ".json": '[{"question": "caf\u00e9?"}]',
            ".csv": "question,answer\ncaf\u00e9?,1\n"}[suffix]
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes(body.encode("latin-1"))
    at = body.index("\u00e9")  # every byte before it is ASCII: character offset = byte offset
    with pytest.raises(SystemExit, match=rf"{re.escape(str(path))}: not UTF-8 text \(byte {at}, line {body[:at].count(chr(10)) + 1}"):
        data.files.load_rows(str(path))


def test_missing_column_names_key_and_columns(tmp_path):
    path = write(tmp_path / "d.csv", ROWS)
    with pytest.raises(SystemExit, match=r"no column 'question' \(--question-key\); columns: problem, answer"):
        data.files.load_rows(path)
    with pytest.raises(SystemExit, match=r"no column 'img' \(images\)"):
        data.files.load_rows(path, question_key="problem", extra_keys={"images": "img"})


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(SystemExit, match="unknown name; use tiny-math, tiny-digits, tiny-sounds, tiny-clips, math500, aime24, amc, amc23, gsm8k"):
        data.files.load_rows("math501")
    with pytest.raises(SystemExit, match="file not found"):
        data.files.load_rows(str(tmp_path / "nope.parquet"))


def test_hub_name_without_network_is_one_line(tmp_path):
    # The real datasets call, offline: must end with one line telling the user to pass a local file.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", "import data.files; data.files.load_rows('math500')"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("--data math500: could not load HuggingFaceH4/MATH-500") and "pass a local copy" in last
    assert "Traceback" not in p.stderr


def test_gsm8k_answer_is_the_number_after_the_marks():
    row = {"answer": "She has 3 + 4 = 7 ... #### 1,234"}
    # the transform load_rows applies to gsm8k rows
    assert row["answer"].split("####")[-1].replace(",", "").strip() == "1234"
    assert data.files.HUB["gsm8k"].config == "main"


# ----------------------------------------------------------------------------- prompts
@pytest.fixture(scope="module")
def tiny_tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tinymath.get_model())


def test_text_template(tmp_path, tiny_tok):
    (tmp_path / "t.txt").write_text("Solve {question} in \\boxed{}.")
    t = data.prompts.load_template(str(tmp_path / "t.txt"))
    assert data.prompts.make_prompt("1+2", tiny_tok, embedded="tiny-math", template=t) == {"text": "Solve 1+2 in \\boxed{}."}


def test_template_errors(tmp_path, tiny_tok):
    (tmp_path / "none.txt").write_text("no placeholder")
    with pytest.raises(SystemExit, match="no {question} placeholder"):
        data.prompts.load_template(str(tmp_path / "none.txt"))
    (tmp_path / "bad.json").write_text('[{"role": "user"}]')
    with pytest.raises(SystemExit, match="role"):
        data.prompts.load_template(str(tmp_path / "bad.json"))
    (tmp_path / "chat.json").write_text('[{"role": "user", "content": "{question}"}]')
    with pytest.raises(SystemExit, match="needs a model with a chat template"):
        data.prompts.make_prompt("1+2", tiny_tok, embedded="tiny-math", template=data.prompts.load_template(str(tmp_path / "chat.json")))
    with pytest.raises(SystemExit, match="file not found"):
        data.prompts.load_template(str(tmp_path / "nope.txt"))


# A chat template in the tiny model's alphabet: user turns become "Q: ...\n", the cue is "A:".
CHAT = ("{% for m in messages %}{% if m.role == 'user' %}Q: {{ m.content }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}A:{% endif %}")


def test_chat_template_path_on_the_tiny_model(tmp_path, tiny_tok):
    # The model's own chat template renders the default math messages (the system turn is the
    # instruction; this template drops it), and the tiny model answers the rendered prompt.
    from sample import HFEngine, load_policy

    tok = tiny_tok.__class__.from_pretrained(tinymath.get_model())
    tok.chat_template = CHAT
    q = tinymath.test_split()[0]
    prompt = data.prompts.make_prompt(q["question"], tok, embedded=None)
    assert prompt["text"] == tinymath.prompt_text(q["question"])
    # a .json template goes through the same chat template
    (tmp_path / "chat.json").write_text(json.dumps([{"role": "user", "content": "{question}"}]))
    assert data.prompts.make_prompt(q["question"], tok, embedded=None, template=data.prompts.load_template(str(tmp_path / "chat.json"))) == prompt
    model, _ = load_policy(str(tinymath.get_model()))
    (out,), = HFEngine(model, tok).generate([prompt], n=1, temperature=0.0, max_tokens=64)
    assert f"\\boxed{{{q['answer']}}}" in out.text


def test_no_chat_template_gets_plain_instruction(tiny_tok):
    assert data.prompts.make_prompt("1+2", tiny_tok, embedded=None)["text"] == f"Question: 1+2\n{data.prompts.MATH_INSTRUCTION}\nAnswer:"


# ----------------------------------------------------------------------------- presets
def test_preset_sets_the_paper_recipe_and_flags_override():
    args = train.parse_args(["--preset", "ttrl-aime24"])
    assert (args.model, args.data, args.epochs, args.lr, args.lr_schedule, args.warmup_ratio) == \
        ("Qwen/Qwen2.5-Math-1.5B", "aime24", 80, 5e-7, "cosine", 0.03)
    assert (args.n_votes, args.n_train, args.prompts_per_step, args.max_tokens, args.kl_coef, args.eps_high) == \
        (64, 32, 8, 3072, 0.001, 0.2)
    args = train.parse_args(["--lr", "1e-6", "--preset", "ttrl-math500", "--model", "m"])
    assert (args.lr, args.model, args.epochs, args.data) == (1e-6, "m", 10, "math500")
    assert train.parse_args(["--preset", "ttrl-amc"]).data == "amc"


def test_unknown_preset_lists_choices(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--preset", "ttrl-gpqa"])
    assert "ttrl-math500" in capsys.readouterr().err


def test_repeated_questions_are_counted_and_dropped_with_dedup(tmp_path, capsys):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"question": "1+1"}, {"question": "2+2"}, {"question": "1+1"},
                                                            {"question": "1+1", "answer": "2"}]))
    rows = data.files.rows_for(train.parse_args(["--data", str(path)]), "tiny-math")
    assert [r["question"] for r in rows] == ["1+1", "2+2", "1+1", "1+1"]  # kept, and said
    assert f"--data {path}: 2 of 4 rows repeat an earlier row's question (kept" in capsys.readouterr().out
    rows = data.files.rows_for(train.parse_args(["--data", str(path), "--dedup"]), "tiny-math")
    assert [r["question"] for r in rows] == ["1+1", "2+2"]
    assert "dropped (--dedup): 2 questions" in capsys.readouterr().out
    # the same question over other media is another question (tiny-digits: one text, 300 images)
    digits = train.parse_args(["--preset", "tiny-digits", "--dedup"])
    assert len(data.files.rows_for(digits, digits.model)) == 300 and "repeat" not in capsys.readouterr().out


def test_embedded_tokenizers_report_questions_that_lose_characters(tiny_tok, tmp_path, capsys):
    # tiny-math's tokenizer holds digits, +, =, ... only: other characters vanish without a word.
    model = str(tinymath.get_model())
    rows = [{"question": "12+34"}, {"question": "What is 1,000 + 2?"}, {"question": "5+5"}]
    assert data.prompts.report_lost_characters(rows, tiny_tok, model, "tiny-math") == 1
    assert capsys.readouterr().out == (
        "--model tiny-math: 1 of 3 questions lose characters its tokenizer does not have (an embedded model reads its own "
        "task's characters only), e.g. question 2: 'What is 1,000 + 2?' is read as '  1000 + 2' (lost: ',?Wahist')\n")
    assert data.prompts.report_lost_characters(tinymath.test_split(), tiny_tok, model, "tiny-math") == 0  # its own task
    assert data.prompts.report_lost_characters(rows, None, str(tmp_path), "my/model") == 0  # not embedded: not checked
    assert capsys.readouterr().out == ""


def test_eval_skips_the_questions_train_skips(tmp_path, capsys):
    # A question too long for the context (128 tokens) with its answer (--max-tokens): skipped, with
    # train.py's line, by the same function; none fits: train.py's one line.
    import eval as evaluation

    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"question": "1+1", "answer": "2"}, {"question": "+".join(["9"] * 60)},
                                                            {"question": "2+2", "answer": "4"}]))
    flags = ["--data", str(path), "--model", "tiny-math", "--engine", "hf", "--k", "2", "--max-tokens", "32"]
    report = evaluation.main(flags)
    said = f"--data {path}: skipped 1 of 3 rows whose prompt + --max-tokens 32 exceeds the model context (128): rows [2]"
    assert said in capsys.readouterr().out and report["models"][0]["n_questions"] == 2
    run = train.main(["--data", str(path), "--engine", "hf", "--max-tokens", "32", "--max-steps", "1", "--prompts-per-step", "2",
                      "--n-votes", "2", "--n-train", "2", "--eval-k", "2", "--out", str(tmp_path / "run")])
    assert said in capsys.readouterr().out and json.loads((run / "eval_after.json").read_text())["n_questions"] == 2
    with pytest.raises(SystemExit, match=r"no prompt fits the model context \(128\) with --max-tokens 200"):
        evaluation.main(flags + ["--max-tokens", "200"])


def test_eval_refuses_models_that_keep_other_questions(tmp_path, monkeypatch):
    # A second model with a shorter context would answer fewer questions: its numbers would not compare.
    import eval as evaluation
    import sample

    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in ["1+1", "+".join(["9"] * 40)]))
    contexts = iter([128, 64])
    monkeypatch.setattr(sample, "context_length", lambda model: next(contexts))
    with pytest.raises(SystemExit, match=r"--model tiny-math: 1 of the 2 questions fit its context, 2 fit the models' before it"):
        evaluation.main(["--data", str(path), "--model", "tiny-math", "tiny-math", "--engine", "hf", "--k", "2",
                         "--max-tokens", "16"])
