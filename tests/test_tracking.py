"""--report-to (tracking.py), the model card (card.py) and monitor.py --compare, on the embedded model.

    python -m pytest tests/test_tracking.py -q

One run folder serves the module: 6 steps with both trackers, killed with SIGKILL once step 3 is
logged (its newest checkpoint is step 2), then resumed; it is read back with TensorBoard's own event
reader and from W&B's offline run files, its model cards parsed, and it is compared with a second,
plain run. W&B runs offline here: no login, no network.
"""
import importlib.util
import json
import os
import shlex
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import card
import monitor
import tracking
import train
from data import tinymath

REPO = Path(__file__).resolve().parents[1]
TRACKERS = [t for t in ("tensorboard", "wandb") if importlib.util.find_spec(t)]


def small(data: Path) -> list[str]:
    return ["--data", str(data), "--engine", "hf", "--prompts-per-step", "2", "--n-votes", "4", "--n-train", "4",
            "--eval-k", "2", "--eval-every", "2", "--save-every", "2"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """W&B as on a machine never logged in: no API key, no ~/.netrc, its folders in the test's tmp."""
    home = tmp_path_factory.mktemp("wandb-home")
    env = {"NETRC": str(home / "netrc"), "WANDB_CONFIG_DIR": str(home), "WANDB_CACHE_DIR": str(home),
           "WANDB_DATA_DIR": str(home), "WANDB_CONSOLE": "off", "WANDB_SILENT": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_IDENTITY_TOKEN_FILE"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, offline):
    """(the tracked run, killed after step 3 and resumed; its first process's output; a plain run of 4 steps)."""
    tinymath.get_model()
    root = tmp_path_factory.mktemp("tracking")
    data = root / "q.jsonl"  # 8 questions: quick evaluations
    data.write_text("".join(json.dumps(r) + "\n" for r in tinymath.test_split()[:8]))
    run, log = root / "run", root / "first.log"
    cmd = [sys.executable, str(REPO / "train.py"), *small(data), "--max-steps", "6", "--out", str(run)]
    cmd += ["--report-to", *TRACKERS] if TRACKERS else []
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT)
    metrics, deadline = run / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once step 3 is logged: checkpoint 2 is on disk
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists() and (run / "checkpoints" / "step_000002").is_dir()
    train.main(["--resume", str(run)])
    plain = train.main(small(data) + ["--max-steps", "4", "--lr", "1e-4", "--out", str(root / "plain")])
    return run, log.read_text(), plain


def steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in open(run / "metrics.jsonl")]


def test_resumed_run_logs_each_step_once(runs):
    run, _, _ = runs
    assert [m["step"] for m in steps(run)] == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------- TensorBoard
def read_tensorboard(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def read_texts(folder: Path):
    """The text summaries as TensorBoard's text plugin reads them (its accumulator purges text at a restart;
    the legacy EventAccumulator above purges scalars, images and such, not tensors)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_holds_every_metric_once_per_step_after_kill_and_resume(runs):
    pytest.importorskip("tensorboard")
    run, _, _ = runs
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # the killed process's file and the resumed one's
    acc = read_tensorboard(run / "tensorboard")
    lines = steps(run)
    numeric = {k for m in lines for k, v in m.items() if isinstance(v, (int, float)) and k != "step"}
    assert {"reward_mean", "label_acc", "entropy", "kl", "t_sample", "lr"} <= numeric
    for key in numeric:
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6], key
        assert [e.value for e in events] == pytest.approx([m[key] for m in lines], rel=1e-6, abs=1e-12), key
    texts = read_texts(run / "tensorboard")
    assert [e.step for e in texts.Tensors("update/text_summary")] == [1, 2, 3, 4, 5, 6]
    # the evaluations: before (step 0), --eval-every 2 (steps 2, 4), after (step 6), as eval/<metric>
    points = monitor.evaluations(run)
    for metric in ("avg@2", "maj@2", "greedy", "majority_ratio"):
        events = acc.Scalars(f"eval/{metric}")
        assert [e.step for e in events] == [0, 2, 4, 6], metric
        assert [e.value for e in events] == pytest.approx([p[metric] for p in points], rel=1e-6)
    assert [e.step for e in texts.Tensors("eval_after/text_summary")] == [6]
    table = texts.Tensors("eval_after/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| metric | before | after (step 6) |" in table and "| avg@2 |" in table


def test_tensorboard_holds_the_flags_as_hyper_parameters(runs):
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, _, _ = runs
    acc = read_tensorboard(run / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    config = json.loads((run / "config.json").read_text())
    assert start.hparams["lr"].number_value == config["lr"] and start.hparams["n_votes"].number_value == 4
    assert start.hparams["reward"].string_value == "majority"


def test_resumed_tensorboard_purges_steps_past_the_checkpoint(tmp_path):
    # A killed run logged steps 1-5, its checkpoint is step 2: the resumed run's values for 3-5 are read, once.
    pytest.importorskip("tensorboard")
    args = train.parse_args(["--report-to", "tensorboard"])
    first = tracking.start(args, tmp_path, 0, {})
    for s in range(1, 6):
        first.log({"step": s, "reward_mean": float(s), "update": "ok", "collapse_warning": None})
    second = tracking.start(args, tmp_path, 2, {})  # the first is never closed: killed
    for s in range(3, 6):
        second.log({"step": s, "reward_mean": 10.0 * s, "update": "ok", "collapse_warning": None})
    second.close()
    events = read_tensorboard(tmp_path / "tensorboard").Scalars("reward_mean")
    assert [(e.step, e.value) for e in events] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]


def test_a_tracker_joining_a_resumed_run_gets_its_history(tmp_path):
    # A run started without --report-to, resumed with it at step 2: steps 1-2 and the evaluation before come from the folder.
    pytest.importorskip("tensorboard")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward_mean": s / 10}) + "\n" for s in (1, 2)))
    before = {"avg@2": 0.5, "n_questions": 8, "ci95": {"avg@2": [0.25, 0.75]}}
    (tmp_path / "eval_before.json").write_text(json.dumps(before))
    tracker = tracking.start(train.parse_args(["--report-to", "tensorboard"]), tmp_path, 2, before)
    tracker.log({"step": 3, "reward_mean": 0.3})
    tracker.close()
    acc = read_tensorboard(tmp_path / "tensorboard")
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("reward_mean")] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/avg@2")] == [(0, 0.5)]


def test_only_rank_0_reports(tmp_path, monkeypatch):
    import dist

    monkeypatch.setattr(dist, "is_main", lambda: False)
    tracker = tracking.start(train.parse_args(["--report-to", *TRACKERS]), tmp_path, 0, {})
    tracker.log({"step": 1, "reward_mean": 1.0})
    assert tracker.backends == [] and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- Weights & Biases
def wandb_records(path: Path):
    """The records of a W&B run file (run-<id>.wandb): a 7-byte header, then LevelDB-log blocks of 32 KiB,
    each record in chunks with a 7-byte header (crc, length, type: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = chunk + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(chunk)
            chunk = b""


def wandb_history(path: Path) -> list[dict]:
    """Each history row as {metric: value}; a key is `key`, or `nested_key` (a list of parts) in recent W&B."""
    return [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            for r in wandb_records(path) if r.HasField("history")]


def test_wandb_offline_run_holds_metrics_and_config_and_resumes_its_id(runs):
    pytest.importorskip("wandb")
    run, first_output, _ = runs
    assert "no W&B login (WANDB_API_KEY or `wandb login`): logging offline" in first_output
    run_id = (run / tracking.WANDB_ID).read_text().strip()
    files = sorted((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 2, files  # the killed process's, then the resumed one's: the same run id
    # SIGKILL: W&B's service writes the offline file in buffers, so the killed process's may hold nothing;
    # the resumed process's file, synced after it, holds the run from step 0
    (first_run,) = [r.run for r in wandb_records(files[1]) if r.HasField("run")]
    config = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in first_run.config.update}
    assert first_run.run_id == run_id and first_run.display_name == run.name
    assert config["lr"] == 5e-05 and config["n_votes"] == 4 and config["report_to"] == TRACKERS
    resumed = wandb_history(files[1])
    assert resumed[0]["_step"] == 0  # offline, W&B cannot tell what it holds: the resumed run sends the history again
    lines = {m["step"]: m for m in steps(run)}
    metric_rows = {h["_step"]: h for h in resumed if "reward_mean" in h}
    assert sorted(metric_rows) == [1, 2, 3, 4, 5, 6]
    for s, h in metric_rows.items():
        for key, value in lines[s].items():
            if isinstance(value, (int, float)) and key != "step":
                assert h[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (s, key)
    assert sorted({h["_step"] for h in resumed if "eval/avg@2" in h}) == [0, 2, 4, 6]


# ----------------------------------------------------------------------------- the model card
def split_card(text: str) -> tuple[dict, str]:
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_final_model_card_parses_and_reproduces_the_run(runs):
    from huggingface_hub import ModelCard

    run, _, _ = runs
    text = (run / "final" / "README.md").read_text()
    loaded = ModelCard.load(run / "final" / "README.md")
    header, body = split_card(text)
    assert loaded.data.to_dict() == header
    assert header["library_name"] == "transformers" and {"ttrl", "test-time-rl", "nanottrl"} <= set(header["tags"])
    assert "base_model" not in header and "datasets" not in header  # the embedded model and a file: no hub ids
    assert "Reward (`--reward majority`): TTRL: reward 1 if the answer is in the group's majority-vote cluster" in body
    before, after = (json.loads((run / f"eval_{t}.json").read_text()) for t in ("before", "after"))
    ci = after["ci95"]["avg@2"]
    assert (f"| avg@2 | {before['avg@2']:.3f} [{before['ci95']['avg@2'][0]:.2f}, {before['ci95']['avg@2'][1]:.2f}] | "
            f"{after['avg@2']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] |") in body
    assert "| steps | 6 of 6 |" in body
    command = body.split("```bash\n")[1].split("\n```")[0]
    words = shlex.split(command)
    assert words[:2] == ["python", "train.py"] and "--resume" not in words and "--report-to" not in words
    config = json.loads((run / "config.json").read_text())
    again = vars(train.parse_args(words[2:]))
    assert {k: v for k, v in again.items() if k not in card.NOT_REPRODUCED} == \
        {k: v for k, v in config.items() if k not in card.NOT_REPRODUCED}


def test_checkpoints_carry_the_card_at_their_step(runs):
    run, _, _ = runs
    header, body = split_card((run / "checkpoints" / "step_000004" / "README.md").read_text())
    assert "ttrl" in header["tags"]
    assert "| steps | 4 of 6 |" in body and "| metric | before | step 4 |" in body and "`final/` holds the trained model" in body


def test_card_names_the_hub_model_and_data_set():
    args = train.parse_args(["--preset", "ttrl-math500", "--dtype", "bfloat16", "--device", "cpu"])
    header, body = split_card(card.model_card(args, "math500-run", {}, 10, 4000, world=4))
    assert header["base_model"] == "Qwen/Qwen2.5-Math-1.5B" and header["datasets"] == ["HuggingFaceH4/MATH-500"]
    assert "Not evaluated" in body
    assert "torchrun --nproc_per_node 4 train.py --preset ttrl-math500 --data math500\n" in body  # the preset's values are its defaults


# ----------------------------------------------------------------------------- monitor.py --compare
def test_compare_draws_two_runs_on_one_figure(runs, tmp_path):
    import matplotlib.image

    run, _, plain = runs
    figure = tmp_path / "compare.png"
    table = monitor.compare([run, plain], ["reward_mean", "label_acc"], figure)
    assert matplotlib.image.imread(figure).shape[2] in (3, 4)  # one image
    header = table.splitlines()[0]
    assert header == f"| metric | {run} before | {run} after | {plain} before | {plain} after |"
    after = json.loads((plain / "eval_after.json").read_text())
    assert any(line.startswith("| avg@2 |") and f"{after['avg@2']:.3f} [" in line for line in table.splitlines())
    with pytest.raises(SystemExit, match="--metrics nope: not in these runs' metrics.jsonl"):
        monitor.compare([run, plain], ["nope"], figure)
    with pytest.raises(SystemExit, match="not a train.py run folder"):
        monitor.compare([run, tmp_path], None, figure)


# ----------------------------------------------------------------------------- flags
def test_missing_tracker_package_is_one_line(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SystemExit):
        train.parse_args(["--report-to", "wandb"])
    err = capsys.readouterr().err.strip()
    assert err.endswith("--report-to wandb: not installed; pip install -r requirements-track.txt") and "\n" not in err


def test_report_to_none_is_alone_and_the_default():
    assert train.parse_args([]).report_to == []
    with pytest.raises(SystemExit):
        train.parse_args(["--report-to", "none", "tensorboard"])
