"""A newcomer's install, measured: clone the repository afresh, then time `make install` (with its
environment's size), `make demo` and, with --test, `make test`.

    python benchmarks/fresh_clone.py [--test] [--where /tmp/mlmol-fresh]
    python benchmarks/fresh_clone.py --tabulate   # measure nothing: redraw the table from the stored row

pip uses whatever this machine's pip configuration gives it (its index, any local wheel cache), which the
table says. Writes benchmarks/results/fresh_clone.json/.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from pipeline import markdown_table, read_results, write_results

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], cwd: Path) -> float:
    """Seconds ``command`` took; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def size_gb(path: Path) -> float:
    """Disk use of ``path`` in GB (du)."""
    return int(subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", action="store_true", help="also time make test")
    parser.add_argument("--where", type=Path, default=Path("/tmp/mlmol-fresh"))
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: redraw the stored table")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("fresh_clone")[0])
        return
    shutil.rmtree(args.where, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(args.where)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.where, check=True,
                            capture_output=True, text=True).stdout.strip()
    pip_config = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True,
                                check=False).stdout
    row = {"install_s": timed(["make", "install"], args.where)}
    row["environment_gb"] = size_gb(args.where / ".venv")
    row["torch_gb"] = size_gb(next((args.where / ".venv" / "lib").glob("python3*/site-packages/torch")))
    row["demo_s"] = timed(["make", "demo"], args.where)
    if args.test:
        row["test_s"] = timed(["make", "test"], args.where)
    row.update(commit=commit, local_wheel_cache="find-links" in pip_config, command=" ".join(
        ["python benchmarks/fresh_clone.py", *(["--test"] if args.test else [])]))
    render(row)


def render(row: dict) -> None:
    """Write the results files of one measured fresh clone."""
    cells = [[f"{row['install_s'] / 60:.1f} min", f"{row['environment_gb']:.1f} GB ({row['torch_gb']:.2f} GB PyTorch)",
              f"{row['demo_s'] / 60:.1f} min", f"{row['test_s'] / 60:.1f} min" if "test_s" in row else "not timed"]]
    cache = ("the wheels came from pip's local cache, so a first download adds its transfer time"
             if row["local_wheel_cache"] else "the wheels were downloaded")
    table = markdown_table(
        f"A fresh clone on 2 CPU cores (`{row.get('command', 'python benchmarks/fresh_clone.py')}`; {cache}):",
        ["make install", "environment", "make demo (after the install)", "make test"], cells, text_columns=4)
    write_results("fresh_clone", [row], table)


if __name__ == "__main__":
    main()
