"""Can a peptide's Boltzmann generator train on this machine? Time per training step, time per 10⁴
samples with their log weights, and peak memory, for the default molecular flow on the native force field.

    mlmol build GYDPETGTWG --caps none --out runs/peptides/chignolin.pdb
    python benchmarks/peptide_feasibility.py --pdb runs/peptides/chignolin.pdb --name chignolin

The system is the PDB with ``--forcefield`` and ``--implicit-solvent`` at ``--temperature`` on the torch
backend; the flow is `mlmol train --pdb`'s default molecular flow, standardised by harmonic samples
around the minimised structure (no MD needed). Timed, after one warm-up each (median of ``--repeats``):
a maximum-likelihood step on a batch of those samples, a reverse-KL step (a batch drawn from the flow,
its energies and forces, backward), and 10⁴ samples drawn with their energies and log weights. Peak
memory is the process's maximum resident set. Writes benchmarks/results/peptide_feasibility.json/.md
(one row per --name, kept across runs).
"""

from __future__ import annotations

import argparse
import resource
import sys

import torch
from pipeline import code_version, markdown_table, median_time, peptide_options, read_results, write_results

from mlmol.config import make_config
from mlmol.generate import sample
from mlmol.run import build_flow
from mlmol.samplers.harmonic import harmonic_samples, minimise
from mlmol.systems.molecules import from_pdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peptide_options(parser, "the peptide's name in the table", required="--tabulate" not in sys.argv)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: rewrite the table from stored rows")
    args = parser.parse_args()
    if args.tabulate:
        write_table(read_results("peptide_feasibility"))
        return
    torch.set_num_threads(args.threads)
    system = from_pdb(args.pdb, forcefield=args.forcefield, implicit_solvent=args.implicit_solvent,
                      temperature=args.temperature, backend="torch", add_hydrogens=False)
    config = make_config(base={"system": {"pdb": args.pdb, "forcefield": args.forcefield,
                                          "implicit_solvent": args.implicit_solvent}}, temperature=args.temperature)
    flow = build_flow(config, system, None)  # harmonic standardisation: no MD needed
    x0 = minimise(system, torch.as_tensor(system.positions))
    data = harmonic_samples(system, x0, 4 * args.batch, torch.Generator().manual_seed(0)).float()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(1)

    def ml_step() -> None:
        optimizer.zero_grad()
        loss = -flow.log_prob(data[torch.randint(len(data), (args.batch,), generator=generator)]).mean()
        loss.backward()
        optimizer.step()

    def kl_step() -> None:
        optimizer.zero_grad()
        x, log_q = flow.sample_with_log_prob(args.batch, generator=generator)
        loss = (system.energy(x.double()).float() + log_q).mean()
        loss.backward()
        optimizer.step()

    ml, kl = median_time(ml_step, args.repeats), median_time(kl_step, args.repeats)
    drawn = {}

    def draw() -> None:
        drawn["samples"] = sample(flow, system, args.samples, seed=2)

    sampling = median_time(draw, max(1, args.repeats // 2))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    row = {"name": args.name, "pdb": args.pdb, "atoms": system.dim // 3, "forcefield": args.forcefield,
           "implicit_solvent": args.implicit_solvent, "temperature": args.temperature, "batch": args.batch,
           "threads": args.threads, "ml_step_s": ml, "kl_step_s": kl, "samples": args.samples,
           "sampling_s": sampling, "finite_energy_fraction": float(torch.isfinite(drawn["samples"].energy).double().mean()),
           "peak_memory_gib": peak_gib, "flow_parameters": sum(p.numel() for p in flow.parameters()),
           "code": code_version(),
           "command": (f"python benchmarks/peptide_feasibility.py --pdb {args.pdb} --name {args.name} --forcefield "
                       f"{' '.join(args.forcefield)} --implicit-solvent {args.implicit_solvent} --temperature "
                       f"{args.temperature:g} --batch {args.batch} --samples {args.samples} --threads {args.threads}")}
    try:
        rows = [r for r in read_results("peptide_feasibility") if r["name"] != args.name]
    except FileNotFoundError:
        rows = []
    write_table([*rows, row])


def write_table(rows: list[dict]) -> None:
    """benchmarks/results/peptide_feasibility.json/.md from the rows."""
    cells = [[r["name"], str(r["atoms"]), f"{r['flow_parameters']:,}", f"{r['implicit_solvent']}, {r['temperature']:g} K",
              str(r["batch"]), f"{1000 * r['ml_step_s']:.0f}", f"{1000 * r['kl_step_s']:.0f}",
              f"{r['sampling_s']:.1f} ({r['samples']:,})", f"{r['peak_memory_gib']:.2f}", str(r["threads"]), f"`{r['command']}`"]
             for r in rows]
    table = markdown_table(
        "Peptide Boltzmann generators on the CPU: the default molecular flow on the native force field (median of "
        "several calls after a warm-up; ML and KL steps at the batch shown; sampling: that many samples with "
        "energies and log weights; peak memory: the process's maximum resident set)",
        ["peptide", "atoms", "flow parameters", "solvent", "batch", "ML step (ms)", "reverse-KL step (ms)",
         "sampling (s, samples)", "peak memory (GiB)", "threads", "command"], cells)
    write_results("peptide_feasibility", rows, table)


if __name__ == "__main__":
    main()
