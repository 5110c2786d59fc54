"""The README's results tables are the files the benchmarks wrote (tools/readme_results.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_results", ROOT / "tools" / "readme_results.py")
readme_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_results)


def test_every_results_block_of_the_readme_is_its_file():
    text = (ROOT / "README.md").read_text()
    names = [name for name, _ in readme_results.blocks(text)]
    assert len(names) >= 20, names
    assert readme_results.stale(text) == [], "run python tools/readme_results.py after rerunning a benchmark"


def test_a_block_that_drifted_from_its_file_is_caught_and_rendered_back():
    text = (ROOT / "README.md").read_text()
    name, body = readme_results.blocks(text)[0]
    drifted = text.replace(body, body.replace("|", "| 1", 1), 1)
    assert readme_results.stale(drifted) == [name]
    assert readme_results.render(drifted) == text


def test_every_results_file_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    for name, _ in readme_results.blocks(text):
        assert (readme_results.RESULTS / name).is_file(), name
