"""mlmol's FNO beside the neuraloperator package's (2.0.0): same data, same loop, same epochs.

    pip install -e ".[operators-bench]"     # neuraloperator 2.0.0, for this benchmark only
    python benchmarks/fno_comparison.py [--problems burgers darcy] [--epochs 20 8] [--threads 1]

Both models have 4 Fourier layers with the paper's modes and widths (Burgers 16 modes × width
64, Darcy 12 × 32; neuraloperator's ``n_modes`` counts ± frequencies, so (31,) and (24, 23) keep
the same modes) and otherwise each package's own architecture and defaults (neuraloperator adds
channel MLPs and soft gating). Both are trained by :func:`mlmol.train.fit` with the same schedule
as ``mlmol operator``: Adam from lr 1e-3 on a cosine to 0, batch 20, relative-L2 loss, 1000
training pairs, the channel normalisation of the problem. Nothing is chosen on the data here (same
epochs for both); the error is on the 200 held-out test pairs, evaluated once after training.
Data are the files ``mlmol operator`` writes (made when absent; see mlmol.operators.run for
the train / validation / test split). Time per epoch is the median over epochs. Writes
benchmarks/results/fno_comparison.json/.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from pipeline import RESULTS, markdown_table, write_results
from torch import nn

from mlmol.operators import FNO
from mlmol.operators import run as operator_run
from mlmol.train import fit

DATA = {"burgers": "runs/operators/burgers-8192-1200-seed0.npz", "darcy": "runs/operators/darcy-85-1200-seed0.npz"}


class NeuralOperatorFNO(nn.Module):
    """neuraloperator's FNO behind mlmol's interface: ``[B, *grid, c]`` in and out, the same
    per-channel normalisation buffers as :class:`mlmol.operators.FNO`."""

    def __init__(self, reference: FNO, channels_in: int = 1):
        super().__init__()
        from neuralop.models import FNO as PackageFNO

        modes = (2 * reference.modes - 1,) if reference.dim == 1 else (2 * reference.modes, 2 * reference.modes - 1)
        self.model = PackageFNO(n_modes=modes, in_channels=channels_in, out_channels=1,
                                hidden_channels=reference.width, n_layers=len(reference.spectral))
        for name in ("input_shift", "input_scale", "output_shift", "output_scale"):
            self.register_buffer(name, getattr(reference, name).clone())

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        v = ((a - self.input_shift) / self.input_scale).movedim(-1, 1)
        return self.model(v).movedim(1, -1) * self.output_scale + self.output_shift


def compare(problem: str, epochs: int) -> list[dict]:
    config = operator_run.make_config(problem, epochs=epochs, coarse_epochs=0, data=DATA[problem])
    Path(DATA[problem]).parent.mkdir(parents=True, exist_ok=True)
    data = operator_run.load_data(config, Path(DATA[problem]).parent, progress=True)
    test = operator_run.pairs(config, data, "test")
    per_epoch = operator_run.steps_per_epoch(config)
    rows = []
    for package in ("mlmol", "neuraloperator"):
        ours = operator_run.build(config)
        plan = operator_run.recipe(config, ours, data)  # sets the normalisation from the training pairs
        torch.manual_seed(config["seed"])
        model = ours if package == "mlmol" else NeuralOperatorFNO(ours)
        started = time.perf_counter()
        history = fit(model, plan, seed=config["seed"], log_every=per_epoch, validate_every=per_epoch * epochs)
        seconds = time.perf_counter() - started
        times = history["time_s"]
        epoch_times = [b - a for a, b in zip([0.0, *times], times, strict=False)]
        model.eval()
        rows.append({"problem": problem, "package": package, "epochs": epochs,
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "validation_l2": history["val_l2"][-1],
                     "test_l2": operator_run.mean_error(model, test[..., :1], test[..., 1:]),
                     "seconds_per_epoch": statistics.median(epoch_times),
                     "train_seconds": seconds, "threads": torch.get_num_threads()})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=["burgers", "darcy"], choices=sorted(DATA))
    parser.add_argument("--epochs", nargs="+", type=int, default=[20, 8], help="epochs per problem, in order")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new = [row | {"held_out": True, "command": " ".join(["python benchmarks/fno_comparison.py", "--problems",
                                                         *args.problems, "--epochs", *map(str, args.epochs),
                                                         "--threads", str(args.threads)])}
           for problem, epochs in zip(args.problems, args.epochs, strict=True) for row in compare(problem, epochs)]
    file = RESULTS / "fno_comparison.json"  # problems not rerun now keep their rows
    rows = [r for r in (json.loads(file.read_text()) if file.is_file() else []) if r["problem"] not in args.problems]
    rows = sorted(rows + new, key=lambda r: (r["problem"], r["package"] != "mlmol"))
    cells = []
    for row in rows:
        ratio = row["seconds_per_epoch"] / next(r["seconds_per_epoch"] for r in rows
                                                if r["problem"] == row["problem"] and r["package"] == "mlmol")
        cells.append([row["problem"] + ("" if row.get("held_out") else " (stale)"), row["package"],
                      f"{row['parameters']:,}", str(row["epochs"]), f"{row['test_l2']:.4f}",
                      f"{row['seconds_per_epoch']:.1f}", f"{ratio:.2f}×"])
    table = markdown_table(
        f"FNO: mlmol vs neuraloperator 2.0.0, same data, loop and epochs ({args.threads} CPU thread(s); "
        "`python benchmarks/fno_comparison.py`, each row's command in the JSON)",
        ["problem", "package", "parameters", "epochs", "test rel. L2", "s / epoch", "time vs mlmol"], cells, 2)
    if any(not r.get("held_out") for r in rows):
        table += ["", "(stale): made before the validation split; its test pairs were also watched during training."]
    write_results("fno_comparison", rows, table)


if __name__ == "__main__":
    main()
