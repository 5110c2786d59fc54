"""The documentation: the command-line page is what the parser says, every public module has its API
page, the README stays short and links into the docs, and no page tells development history."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "tools" / "cli_docs.py")
cli_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli_docs)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted((DOCS / "api").glob("*.md"))]


def test_the_command_line_page_is_the_parsers_help():
    page = (DOCS / "cli.md").read_text()
    assert page == cli_docs.render(), "run python tools/cli_docs.py"
    for command in ("systems", "train", "sample", "evaluate", "report", "simulate", "vmc", "operator"):
        assert f"## mlmol {command}\n" in page


def test_every_module_has_an_api_page():
    documented = {m for page in (DOCS / "api").glob("*.md") for m in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M)}
    modules = {p.relative_to(ROOT / "src").with_suffix("").as_posix().replace("/", ".")
               for p in (ROOT / "src" / "mlmol").rglob("*.py")}
    public = {m for m in modules if not m.split(".")[-1].startswith("_")}
    assert public - documented == set()
    assert documented <= modules  # no page names a module that is gone


def test_every_page_is_in_the_navigation_and_every_relative_link_resolves():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in _pages()[1:]:
        assert str(page.relative_to(DOCS)) in nav, page
    for page in _pages():
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page, target)


def test_the_readme_is_short_and_pages_hold_no_development_history():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250
    history = re.compile(r"\bissue \d+|(this|last|next|previous|earlier) session|this machine|this \d-core|"
                         r"this VM|\blent\b|\bloan|\b[0-9a-f]{7,40}\b commit|"
                         r"commit [0-9a-f]{7,40}|\.\./shared")
    for page in _pages():
        found = history.findall(page.read_text())
        assert not found, (page, found)
