"""Every Python example in the README and the documentation runs (slow: each trains or simulates).

A block whose first line is ``# not run by the tests: REASON`` is skipped and says why; the others
run as written, from the repository root, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = "# not run by the tests:"


def _examples() -> list:
    found = []
    for page in PAGES:
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            marks = [pytest.mark.skip(reason=code.splitlines()[0][len(SKIP):].strip())] if code.startswith(SKIP) else []
            if page.name not in ("index.md", "getting-started.md"):  # those two repeat the README's example
                marks.append(pytest.mark.smoke)
            found.append(pytest.param(code, id=f"{page.relative_to(ROOT)}:{i}", marks=marks))
    return found


def test_the_pages_have_examples_and_say_why_one_is_not_run():
    examples = _examples()
    assert len(examples) >= 8
    assert sum(1 for e in examples if e.marks and e.marks[0].name == "skip") <= 1


@pytest.mark.slow
@pytest.mark.parametrize("code", _examples())
def test_an_example_runs(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-2000:]
