"""Write docs/cli.md, the command-line reference, from the parser's own help texts.

    python tools/cli_docs.py          # rewrite docs/cli.md
    python tools/cli_docs.py --check  # exit 1 when docs/cli.md differs from what the parser says
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"
INTRO = """# Command line

`mlmol COMMAND --help` prints the same. Every user error ends with exit status 2 and one line
that names the problem; exit status 1 means a bug (rerun with `MLMOL_DEBUG=1` for the traceback).
Every run directory, whatever made it, holds `config.yaml`, `checkpoint.pt`, `metrics.jsonl`,
`metrics.json` and, after `mlmol report`, `report.html`.
"""


def render() -> str:
    """The reference page: the top-level help, then each command's."""
    os.environ["COLUMNS"] = "100"  # the same line breaks on every machine
    from mlmol.cli import _parser

    parser = _parser()
    parts = [INTRO, "```text", parser.format_help().rstrip(), "```", ""]
    for sub in parser._subparsers._group_actions:
        for name, command in sub.choices.items():
            parts += [f"## mlmol {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if docs/cli.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if PAGE.read_text() != text:
            print("docs/cli.md differs from the parser's help; run python tools/cli_docs.py")
            sys.exit(1)
        print("docs/cli.md matches the command line")
        return
    PAGE.write_text(text)


if __name__ == "__main__":
    main()
