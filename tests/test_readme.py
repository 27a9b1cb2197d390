"""The README's claims about the code stay true: its reading table names what projects/reading_path.py
counts, its line counts are that script's, and its results table has the columns projects/bench.py
prints.

    python -m pytest tests/test_readme.py -q
"""
import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def load(script: str):
    spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def reading_table() -> str:
    start = README.index("**Read the code in this order**")
    return README[start:README.index("\n\n", README.index("| step | file: function |", start))]


def test_reading_table_names_the_counted_path():
    rp = load("projects/reading_path.py")
    named = set(re.findall(r"`([A-Za-z_][\w.]*)`", reading_table()))
    named = {n.split(".")[0] for n in named if not n.endswith(".py")}  # HFEngine.sync -> HFEngine
    counted = {name for _, name in rp.PATH}
    assert counted <= named, f"counted but not in the README's table: {counted - named}"
    others = named - counted - {"VLLMEngine"}  # the GPU engine, named beside the default one
    assert not others, f"in the README's table but not counted: {others}"


def test_reading_table_states_the_counted_lines():
    counts = load("projects/reading_path.py").counts()
    stated = [int(n) for n in re.findall(r"(\d+)\s+lines", reading_table())]
    assert len(stated) == 2, stated
    # within 5%: an edit to the path need not touch the README, a redesign must
    for said, counted in zip(stated, (counts["path"], counts["main_end_to_end"])):
        assert abs(said - counted) <= 0.05 * counted, (said, counted)


def test_results_table_has_the_columns_bench_prints():
    header = load("projects/bench.py").header(16).splitlines()[0]
    assert header in README, header
