"""Render the results tables of the README and the documentation from the files the benchmarks wrote.

    python tools/readme_results.py          # rewrite every results block of README.md and docs/ from its file
    python tools/readme_results.py --check  # exit 1 and name every block that differs from its file

A results block is the text between ``<!-- results: NAME.md -->`` and ``<!-- /results -->``;
its content is exactly ``benchmarks/results/NAME.md``, so a table in the README or the docs cannot
drift from the file that the benchmark's command wrote.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+\.md) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(file name, content) of every results block of ``text``, in order."""
    return [(m["name"], m["body"]) for m in BLOCK.finditer(text)]


def expected(name: str) -> str:
    """What the block of ``name`` must hold: the file, ending in one newline."""
    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"README names benchmarks/results/{name}, which does not exist")
    return path.read_text().rstrip("\n") + "\n"


def render(text: str) -> str:
    """``text`` with every results block replaced by its file's content."""
    return BLOCK.sub(lambda m: m[1] + expected(m["name"]) + m[4], text)


def stale(text: str) -> list[str]:
    """Names of the blocks whose content differs from their file."""
    return [name for name, body in blocks(text) if body != expected(name)]


def pages() -> list[Path]:
    """The README and every documentation page (not the results folder the docs link to)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "api").glob("*.md"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a block differs from its file")
    args = parser.parse_args()
    if args.check:
        found = {page: stale(page.read_text()) for page in pages()}
        names = [f"{page.relative_to(ROOT)}: {name}" for page, bad in found.items() for name in bad]
        if names:
            print("results blocks differ from their files (run python tools/readme_results.py): " + ", ".join(names))
            sys.exit(1)
        print(f"{sum(len(blocks(page.read_text())) for page in pages())} results blocks in {len(pages())} pages "
              "match their files")
        return
    for page in pages():
        page.write_text(render(page.read_text()))


if __name__ == "__main__":
    main()
