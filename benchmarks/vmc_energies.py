"""VMC energies of H, He, H₂, Li and LiH, FermiNet and Slater–Jastrow side by side, with the fraction
of the correlation energy recovered.

    python benchmarks/vmc_energies.py [--run slater-jastrow|ferminet|all] [--threads 1]

Each row is a run directory made by the ``mlmol vmc`` command listed in ``RUNS`` (``--run`` makes the
missing ones of that ansatz first; the FermiNet Li and LiH runs take 2 hours each). The correlation
energy is E_exact − E_HF with the Hartree–Fock limit approximated by pyscf in cc-pV5Z (UHF for Li,
RHF for LiH); the fraction recovered is (E_HF − E_VMC) / (E_HF − E_exact). Writes
benchmarks/results/vmc_energies.json/.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from pipeline import markdown_table, write_results

from mlmol.rundir import RunDirectory
from mlmol.vmc import get
from mlmol.vmc.hartree_fock import hartree_fock

BIG = ["--steps", "100000", "--pretrain", "2000"]
SJ = ["--ansatz", "slater-jastrow", "--optimizer", "natural-gradient"]
RUNS = {  # (system, ansatz): mlmol vmc arguments after the system name
    ("H", "ferminet"): ["--out", "runs/vmc/h", "--steps", "4000"],
    ("He", "ferminet"): ["--out", "runs/vmc/he", "--steps", "6000"],
    ("H2", "ferminet"): ["--out", "runs/vmc/h2", "--steps", "6000"],
    ("Li", "ferminet"): ["--out", "runs/vmc/li", *BIG, "--max-minutes", "114"],
    ("LiH", "ferminet"): ["--out", "runs/vmc/lih", *BIG, "--max-minutes", "114"],
    # Slater–Jastrow has few parameters: the natural gradient converges it in far fewer steps than Adam
    ("H", "slater-jastrow"): [*SJ, "--out", "runs/vmc/sj-h", "--steps", "3000"],
    ("He", "slater-jastrow"): [*SJ, "--out", "runs/vmc/sj-he", "--steps", "3000"],
    ("H2", "slater-jastrow"): [*SJ, "--out", "runs/vmc/sj-h2", "--steps", "3000"],
    ("Li", "slater-jastrow"): [*SJ, "--out", "runs/vmc/sj-li", *BIG, "--max-minutes", "10"],
    ("LiH", "slater-jastrow"): [*SJ, "--out", "runs/vmc/sj-lih", *BIG, "--max-minutes", "30"],
}
LABELS = {"ferminet": "FermiNet", "slater-jastrow": "Slater–Jastrow"}


def run_dir(arguments: list[str]) -> Path:
    return Path(arguments[arguments.index("--out") + 1])


def evaluation(run: Path) -> dict | None:
    """The run's evaluation: RUN/metrics.json (energy.json in runs written before the shared run contract)."""
    for name in ("metrics.json", "energy.json"):
        if (run / name).is_file():
            return json.loads((run / name).read_text())
    return None


def train_seconds(run: Path) -> float:
    """Wall time of training: the last logged step's seconds since its call started, summed over calls."""
    total, last = 0.0, 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed = record.get("time_s", record.get("elapsed_s"))  # elapsed_s: runs written before the shared loop
        if elapsed is None:
            return float("nan")
        if elapsed < last:  # a new call (resume) restarted the clock
            total += last
        last = elapsed
    return total + last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=["slater-jastrow", "ferminet", "all"], help="make the missing runs first")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for (system, ansatz), extra in RUNS.items():
        if args.run in (ansatz, "all") and evaluation(run_dir(extra)) is None:
            subprocess.run([sys.executable, "-m", "mlmol", "vmc", system, *extra, "--threads", str(args.threads)],
                           check=True)
    reference = {name: hartree_fock(get(name), "cc-pv5z").energy for name in ("Li", "LiH")}
    rows, cells = [], []
    for (system, ansatz), extra in RUNS.items():
        run = run_dir(extra)
        result = evaluation(run)
        if result is None:
            print(f"skipping {run}: no evaluation (make it with: mlmol vmc {system} {' '.join(extra)})")
            continue
        seconds = train_seconds(run)
        if math.isnan(seconds):  # runs from before metrics carried elapsed_s
            seconds = result["train_s_this_call"]
        optimizer = RunDirectory(run).read_config().get("optimizer", "adam")
        row = {"system": system, "ansatz": ansatz, "optimizer": optimizer,
               "command": f"mlmol vmc {system} {' '.join(extra)}", "steps": result["steps"], "energy": result["value"], "stderr": result["stderr"],
               "exact": result["exact"], "error_mha": 1e3 * result["error"], "train_s": seconds}
        fraction = ""
        if system in reference:
            row["hartree_fock_cc_pv5z"] = reference[system]
            row["correlation_fraction"] = (reference[system] - result["value"]) / (reference[system] - result["exact"])
            fraction = f"{100 * row['correlation_fraction']:.1f}%"
        rows.append(row)
        cells.append([system, LABELS[ansatz], optimizer, f"{result['steps']:,}",
                      f"{result['value']:.6f} ± {result['stderr']:.6f}", f"{result['exact']:.6f}", f"{row['error_mha']:+.2f}", fraction, f"{seconds / 60:.0f} min"])
    hf = ", ".join(f"{k} {v:.6f}" for k, v in reference.items())
    table = markdown_table(
        "VMC energies (`python benchmarks/vmc_energies.py`; each row's command in the JSON; correlation "
        f"energy against Hartree–Fock/cc-pV5Z from pyscf: {hf} Ha):",
        ["system", "ansatz", "optimizer", "steps", "E (Ha)", "exact (Ha)", "error (mHa)", "correlation recovered",
         "training"],
        cells, text_columns=3)
    write_results("vmc_energies", rows, table)


if __name__ == "__main__":
    main()
