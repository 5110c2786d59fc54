"""The results tables of the README and the docs are the files the benchmarks wrote (tools/readme_results.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_results", ROOT / "tools" / "readme_results.py")
readme_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_results)


def test_every_results_block_of_the_readme_and_the_docs_is_its_file():
    pages = readme_results.pages()
    assert ROOT / "README.md" in pages and ROOT / "docs" / "molecules.md" in pages
    names = [name for page in pages for name, _ in readme_results.blocks(page.read_text())]
    assert len(names) >= 25, names
    for page in pages:
        assert readme_results.stale(page.read_text()) == [], f"{page}: run python tools/readme_results.py"


def test_a_block_that_drifted_from_its_file_is_caught_and_rendered_back():
    text = (ROOT / "README.md").read_text()
    name, body = readme_results.blocks(text)[0]
    drifted = text.replace(body, body.replace("|", "| 1", 1), 1)
    assert readme_results.stale(drifted) == [name]
    assert readme_results.render(drifted) == text


def test_every_results_file_the_pages_name_exists():
    for page in readme_results.pages():
        for name, _ in readme_results.blocks(page.read_text()):
            assert (readme_results.RESULTS / name).is_file(), (page, name)
