"""Open pages in headless Chromium (Debian's ``chromium``): screenshots, and whether every image loaded.

    python tools/browser.py RUN/report.html docs/images/report.png   # screenshot of a report for the docs

Used by tests/test_browser.py on an mlmol report and on the built documentation.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# appended to a copy of the page: once everything has loaded, the title says how many images did
PROBE = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = "images " + loaded + " of " + images.length;
});</script>"""


def chromium() -> str | None:
    """The Chromium executable, or None when it is not installed (apt install chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(arguments: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    executable = chromium()
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt install chromium")
    return subprocess.run([executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *arguments], capture_output=True, text=True, check=False,
                          timeout=timeout)


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 2400) -> Path:
    """A PNG of ``page`` as Chromium draws it at ``width`` × ``height`` pixels."""
    png.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--screenshot={png.resolve()}", f"--window-size={width},{height}", page.resolve().as_uri()])
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}: {done.stderr[-500:]}")
    return png


def loaded_images(page: Path) -> tuple[int, int]:
    """(images that loaded, images) on ``page`` once Chromium has loaded it."""
    fd, name = tempfile.mkstemp(dir=page.parent, prefix=".probe-", suffix=".html")  # beside it: same relative links
    os.close(fd)
    probe = Path(name)
    try:
        probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        dom = _run(["--dump-dom", probe.resolve().as_uri()]).stdout
    finally:
        probe.unlink(missing_ok=True)
    match = re.search(r"<title>images (\d+) of (\d+)</title>", dom)
    if match is None:
        raise RuntimeError(f"Chromium did not run the page's script: {dom[:300]}")
    return int(match[1]), int(match[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    loaded, total = loaded_images(args.page)
    print(f"{loaded} of {total} images loaded; wrote {screenshot(args.page, args.png)}")


if __name__ == "__main__":
    main()
