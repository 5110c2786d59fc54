"""The training loop: stages of summed losses, seeded, checkpointed and resumable bit for bit."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data import atomic_write, load_torch, save_torch
from .errors import MlmolError
from .flows import Flow
from .losses import Batch, Loss
from .systems import Energy


@dataclass
class Stage:
    """``steps`` optimisation steps of ``loss`` with Adam at learning rate ``lr``.

    ``batch_size`` flow samples per step (for energy-based terms); ``data_batch_size``
    data points per step (for ML; defaults to ``batch_size``). ``lr_end`` (optional) anneals
    the learning rate from ``lr`` to ``lr_end`` over the stage on a cosine.
    """

    steps: int
    loss: Loss
    lr: float = 1e-3
    batch_size: int = 1000
    data_batch_size: int | None = None
    name: str = ""
    lr_end: float | None = None

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` steps into the stage."""
        if self.lr_end is None or self.steps <= 1:
            return self.lr
        return self.lr_end + 0.5 * (self.lr - self.lr_end) * (1 + math.cos(math.pi * step / (self.steps - 1)))


def negative_log_likelihood(flow: Flow, data: torch.Tensor) -> dict[str, float]:
    """``{"val_ml": −mean log q(data)}``, in chunks (the default validation metric of a flow)."""
    return {"val_ml": sum(-flow.log_prob(chunk).sum().item() for chunk in data.split(4096)) / len(data)}


@dataclass
class Recipe:
    """A training schedule: stages run in order, with the system and data they use.

    ``validation`` (optional) holds data kept out of training; ``validation_metric(model, data)``
    is logged on it (default: the negative log-likelihood ``val_ml`` of a flow; a rise while
    ``ml`` falls is overfitting: more data or fewer steps).
    """

    stages: Sequence[Stage]
    system: Energy | None = None
    data: torch.Tensor | None = None
    grad_clip: float = 1e3
    validation: torch.Tensor | None = None
    validation_metric: Callable[[nn.Module, torch.Tensor], dict[str, float]] = negative_log_likelihood

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def __repr__(self) -> str:
        lines = [f"  {s.name or i}: {s.steps} steps of {s.loss!r}, lr={s.lr:g}, batch={s.batch_size}"
                 for i, s in enumerate(self.stages)]
        return "Recipe(\n" + "\n".join(lines) + "\n)"


@dataclass
class History:
    """Logged metrics, one dict per logged step."""

    records: list[dict] = field(default_factory=list)

    def __getitem__(self, key: str) -> list:
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)


def _stage_at(recipe: Recipe, step: int) -> tuple[int, Stage, int]:
    """Index of the stage containing global ``step``, the stage, and the step where it starts."""
    start = 0
    for i, stage in enumerate(recipe.stages):
        if step < start + stage.steps:
            return i, stage, start
        start += stage.steps
    return len(recipe.stages) - 1, recipe.stages[-1], start - recipe.stages[-1].steps


def _read_metrics(path: Path, up_to_step: int) -> list[dict]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["step"] <= up_to_step]


def fit(flow: nn.Module, recipe: Recipe, seed: int = 0, checkpoint: str | Path | None = None,
        metrics: str | Path | None = None, resume: bool = False, progress: bool = False,
        log_every: int = 10, checkpoint_every: int = 250, until: int | None = None,
        validate_every: int = 250) -> History:
    """Train ``flow`` (or any module the recipe's losses know, e.g. a neural operator) through the
    stages of ``recipe``.

    Seeded: the same seed gives the same weights. With ``checkpoint`` the full state (weights,
    optimiser, random generator, step) is written atomically every ``checkpoint_every`` steps,
    at the end, and on Ctrl-C; ``resume=True`` continues from it bit for bit. ``until`` stops
    early at a global step (the schedule is unchanged). Metrics go to ``metrics`` as JSON lines,
    with the recipe's validation metric (a flow's ``val_ml`` by default) every ``validate_every`` steps
    when the recipe has validation data.
    """
    weight = next(p for p in flow.parameters() if p.is_floating_point())
    device, dtype = weight.device, weight.dtype
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    data = None if recipe.data is None else recipe.data.to(device=device, dtype=dtype)
    validation = None if recipe.validation is None else recipe.validation.to(device=device, dtype=dtype)

    def validate() -> dict[str, float]:
        flow.eval()
        with torch.no_grad():
            values = recipe.validation_metric(flow, validation)
        flow.train()
        return values
    step, stage_index, optimizer = 0, -1, None
    metrics_path = None if metrics is None else Path(metrics)
    history = History()

    if resume:
        if checkpoint is None:
            raise MlmolError("resume=True needs a checkpoint path")
        state = load_torch(checkpoint)
        try:
            flow.load_state_dict(state["flow"])
            step, stage_index = state["step"], state["stage"]
            generator.set_state(state["generator"])
            optimizer = torch.optim.Adam(flow.parameters(), lr=recipe.stages[stage_index].lr)
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError, IndexError) as error:
            raise MlmolError(
                f"the checkpoint {checkpoint} does not match this run ({type(error).__name__}: "
                f"{error}); train again without --resume"
            ) from None
        if metrics_path is not None:
            history.records = _read_metrics(metrics_path, step)
            atomic_write(metrics_path, "".join(json.dumps(r) + "\n" for r in history.records))
    elif metrics_path is not None:
        atomic_write(metrics_path, "")

    step_start_rng = generator.get_state()  # an interrupted step is redone from here on resume

    def save() -> None:
        if checkpoint is not None:
            save_torch({"flow": flow.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
                        "generator": step_start_rng, "step": step, "stage": stage_index,
                        "spec": getattr(flow, "spec", None)}, checkpoint)

    total = recipe.total_steps
    stop = total if until is None else min(until, total)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, desc="training", unit="step", dynamic_ncols=True, mininterval=1.0,
                   disable=None)  # None: no bar when stderr is not a terminal (logs, CI)
    log_file = open(metrics_path, "a") if metrics_path is not None else None
    started = time.perf_counter()
    try:
        flow.train()
        while step < stop:
            index, stage, start = _stage_at(recipe, step)
            if index != stage_index:
                stage_index = index
                optimizer = torch.optim.Adam(flow.parameters(), lr=stage.lr)
            for group in optimizer.param_groups:
                group["lr"] = stage.lr_at(step - start)
            batch = Batch(flow, recipe.system, data, generator, stage.batch_size, stage.data_batch_size)
            loss, record = stage.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            skipped = not torch.isfinite(loss)
            if not skipped:
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), recipe.grad_clip)
                skipped = not math.isfinite(float(norm))
                if not skipped:
                    optimizer.step()
            step += 1
            step_start_rng = generator.get_state()
            validating = validation is not None and (step % validate_every == 0 or step == stop)
            if step % log_every == 0 or step == total or skipped or validating:
                record = {"step": step, "stage": stage.name or str(index), "loss": float(loss.detach()),
                          **record, "skipped": skipped, "time_s": round(time.perf_counter() - started, 3)}
                if validating:
                    record.update(validate())
                history.records.append(record)
                if log_file is not None:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                if bar is not None:
                    bar.set_postfix(stage=record["stage"], loss=f"{record['loss']:.3f}")
            if bar is not None:
                bar.update(1)
            if step % checkpoint_every == 0:
                save()
        save()
    except KeyboardInterrupt:
        save()
        raise
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
        flow.eval()
    return history
