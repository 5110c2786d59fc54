"""The training loop: stages of summed losses, seeded, checkpointed and resumable bit for bit."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data import atomic_write, load_torch, save_torch
from .errors import MlmolError
from .flows import FlowModel
from .losses import Batch, Diverged, Loss
from .progress import progress as progress_bar
from .systems import Energy

Optimizer = Callable[..., torch.optim.Optimizer]  # (parameters, lr=...) -> optimiser


@dataclass
class Stage:
    """``steps`` optimisation steps of ``loss`` with ``optimizer`` (Adam by default) at learning rate ``lr``.

    ``batch_size`` flow samples per step (for energy-based terms); ``data_batch_size``
    data points per step (for ML; defaults to ``batch_size``). The learning rate is annealed
    from ``lr`` to ``lr_end`` over the stage on a cosine when ``lr_end`` is given, or decays as
    lr / (1 + t / ``decay``) (FermiNet's schedule) when ``decay`` is.
    """

    steps: int
    loss: Loss
    lr: float = 1e-3
    batch_size: int = 1000
    data_batch_size: int | None = None
    name: str = ""
    lr_end: float | None = None
    decay: float | None = None
    optimizer: Optimizer = torch.optim.Adam

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` steps into the stage."""
        if self.decay is not None:
            return self.lr / (1 + step / self.decay) if math.isfinite(self.decay) else self.lr
        if self.lr_end is None or self.steps <= 1:
            return self.lr
        return self.lr_end + 0.5 * (self.lr - self.lr_end) * (1 + math.cos(math.pi * step / (self.steps - 1)))


def negative_log_likelihood(flow: FlowModel, data: torch.Tensor) -> dict[str, float]:
    """``{"val_ml": −mean log q(data)}``, in chunks (the default validation metric of a flow)."""
    return {"val_ml": sum(-flow.log_prob(chunk).sum().item() for chunk in data.split(4096)) / len(data)}


@dataclass
class Recipe:
    """A training schedule: stages run in order, with the system and data they use.

    ``validation`` (optional) holds data kept out of training; ``validation_metric(model, data)``
    is logged on it (default: the negative log-likelihood ``val_ml`` of a flow; a rise while
    ``ml`` falls is overfitting: more data or fewer steps).

    A step whose loss or gradient is not finite is skipped (and logged as skipped). With
    ``max_recoveries`` > 0 such a step, a loss that raises :class:`~mlmol.losses.Diverged`, or one that
    leaves non-finite weights instead sends training back to its last checkpoint with the learning
    rate halved, at most that many times (for runs whose walkers or weights can run away, e.g. VMC).
    """

    stages: Sequence[Stage]
    system: Energy | None = None
    data: torch.Tensor | None = None
    grad_clip: float = 1e3
    validation: torch.Tensor | None = None
    validation_metric: Callable[[nn.Module, torch.Tensor], dict[str, float]] = negative_log_likelihood
    max_recoveries: int = 0

    @property
    def total_steps(self) -> int:
        """Steps over all stages."""
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


def _finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def fit(model: nn.Module, recipe: Recipe, seed: int = 0, checkpoint: str | Path | None = None,
        metrics: str | Path | None = None, resume: bool = False, progress: bool = False,
        log_every: int = 10, checkpoint_every: int = 250, until: int | None = None,
        validate_every: int = 250, max_seconds: float | None = None, description: str = "training",
        notify: Callable[[str], None] | None = None) -> History:
    """Train ``model`` (a flow, a neural operator, a wavefunction: any module the recipe's losses
    know) through the stages of ``recipe``: the one training loop of every kind of run.

    Seeded: the same seed gives the same weights. With ``checkpoint`` the full state (weights,
    optimiser, random generator, the losses' own state, step, recoveries, and a flow's ``spec`` to
    rebuild it) is written atomically every ``checkpoint_every`` steps, at the end, and on Ctrl-C (the
    step under way is finished first, then KeyboardInterrupt is raised); ``resume=True`` continues
    from it bit for bit. ``until`` stops early at a global step and ``max_seconds`` after
    that much wall time (the schedule is unchanged). Metrics go to ``metrics`` as JSON lines every
    ``log_every`` steps, with the recipe's validation metric (a flow's ``val_ml`` by default) every
    ``validate_every`` steps when the recipe has validation data, and ``energy_evaluations``, the target
    energy evaluations of all steps so far (what the losses report as ``evaluations``). ``notify`` (e.g. ``print``) is told
    where a resumed run continues.
    """
    weight = next(p for p in model.parameters() if p.is_floating_point())
    device, dtype = weight.device, weight.dtype
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    data = None if recipe.data is None else recipe.data.to(device=device, dtype=dtype)
    validation = None if recipe.validation is None else recipe.validation.to(device=device, dtype=dtype)

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            values = recipe.validation_metric(model, validation)
        model.train()
        return values
    step, stage_index, recoveries, optimizer, evaluations = 0, -1, 0, None, 0
    metrics_path = None if metrics is None else Path(metrics)
    history = History()

    def restore() -> None:
        """Weights, optimiser, generator, step and the losses' state from the checkpoint."""
        nonlocal step, stage_index, optimizer, recoveries, evaluations
        state = load_torch(checkpoint)
        try:
            model.load_state_dict(state["flow"])
            step, stage_index = state["step"], state["stage"]
            evaluations = max(evaluations, state.get("evaluations", 0))  # work of discarded steps still counts
            recoveries = max(recoveries, state.get("recoveries", 0))
            generator.set_state(state["generator"])
            optimizer = None  # a checkpoint from before the first step: the loop makes a fresh one
            if state["optimizer"] is not None:
                stage = recipe.stages[stage_index]
                optimizer = stage.optimizer(model.parameters(), lr=stage.lr)
                optimizer.load_state_dict(state["optimizer"])
            for stage, loss_state in zip(recipe.stages, state.get("losses", []), strict=False):
                stage.loss.load_state_dict(loss_state)
        except (KeyError, RuntimeError, ValueError, IndexError, TypeError, AttributeError) as error:
            raise MlmolError(
                f"the checkpoint {checkpoint} does not match this run ({type(error).__name__}: "
                f"{error}); train again without --resume"
            ) from None

    def rewind_log() -> None:
        """Keep only the logged steps up to ``step`` (after going back to a checkpoint)."""
        history.records = [r for r in history.records if r["step"] <= step]
        if metrics_path is not None:
            history.records = _read_metrics(metrics_path, step)
            atomic_write(metrics_path, "".join(json.dumps(r) + "\n" for r in history.records))

    log_file = None
    if resume:
        if checkpoint is None:
            raise MlmolError("resume=True needs a checkpoint path")
        restore()
        if step >= recipe.total_steps:
            raise MlmolError(f"the run has already finished its {recipe.total_steps} steps; nothing to resume "
                             "(evaluate it, or train a new run with more steps)")
        if notify is not None:
            notify(f"resuming at step {step} of {recipe.total_steps}")
        rewind_log()
    elif metrics_path is not None:
        atomic_write(metrics_path, "")

    step_start_rng = generator.get_state()  # an interrupted step is redone from here on resume

    def save() -> None:
        if checkpoint is not None:
            save_torch({"flow": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
                        "generator": step_start_rng, "step": step, "stage": stage_index, "recoveries": recoveries,
                        "evaluations": evaluations,
                        "losses": [stage.loss.state_dict() for stage in recipe.stages],
                        "spec": model.spec if isinstance(model, FlowModel) else None}, checkpoint)

    total = recipe.total_steps
    stop = total if until is None else min(until, total)
    bar = None
    if progress:
        bar = progress_bar(total=total, initial=step, desc=description, unit="step")
    started = time.perf_counter()
    deadline = math.inf if max_seconds is None else started + max_seconds
    if recipe.max_recoveries and checkpoint is not None and not resume:
        save()  # the state a first divergence goes back to
    interrupted = False

    def on_interrupt(signum: int, frame: object) -> None:
        """Ctrl-C: finish this step, checkpoint and stop; a second Ctrl-C stops at once (the last
        checkpoint stays)."""
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True

    previous, updating = None, False  # updating: this step's update may be in the weights
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        log_file = open(metrics_path, "a") if metrics_path is not None else None  # noqa: SIM115 (closed below)
        model.train()
        while step < stop and time.perf_counter() < deadline:
            updating = False
            index, stage, start = _stage_at(recipe, step)
            if index != stage_index or optimizer is None:
                stage_index = index
                optimizer = stage.optimizer(model.parameters(), lr=stage.lr)
            lr = 0.5**recoveries * stage.lr_at(step - start)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = Batch(model, recipe.system, data, generator, stage.batch_size, stage.data_batch_size)
            try:
                loss, record = stage.loss(batch)
                optimizer.zero_grad(set_to_none=True)
                skipped = not torch.isfinite(loss)
                if not skipped:
                    if loss.requires_grad:
                        loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                    skipped = not math.isfinite(float(norm))
                    if not skipped:
                        updating = True
                        optimizer.step()
                healthy = not skipped and (not recipe.max_recoveries or _finite(model))
            except Diverged:
                if not recipe.max_recoveries:
                    raise
                healthy = False
            if not healthy and recipe.max_recoveries:
                recoveries += 1
                if recoveries > recipe.max_recoveries or checkpoint is None:
                    raise MlmolError(f"training diverged {recoveries} times; the last checkpoint is {checkpoint}. "
                                     "Lower the learning rate and resume, or restart")
                if log_file is not None:
                    log_file.close()
                restore()
                rewind_log()
                log_file = open(metrics_path, "a") if metrics_path is not None else None  # noqa: SIM115
                step_start_rng = generator.get_state()
                if bar is not None:
                    bar.n = step
                    bar.write(f"step {step}: diverged (non-finite or exploding); back to the checkpoint, learning "
                              f"rate × {0.5**recoveries:g}")
                continue
            step += 1
            evaluations += int(record.pop("evaluations", 0))
            step_start_rng = generator.get_state()
            validating = validation is not None and (step % validate_every == 0 or step == stop)
            if step % log_every == 0 or step == total or skipped or validating:
                record = {"step": step, "stage": stage.name or str(index), "loss": float(loss.detach()), "lr": lr,
                          **record, "energy_evaluations": evaluations, "skipped": skipped,
                          "time_s": round(time.perf_counter() - started, 3)}
                if validating:
                    record.update(validate())
                history.records.append(record)
                if log_file is not None:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                if bar is not None:
                    bar.set_postfix(stage=record["stage"], loss=f"{record['loss']:.3f}", refresh=False)
            if bar is not None:
                bar.update(1)
            if step % checkpoint_every == 0 or interrupted:
                save()
            if interrupted:
                raise KeyboardInterrupt
        save()
    except KeyboardInterrupt:
        if not updating:  # raised before this step's update (e.g. by a loss): the state is consistent
            save()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
        model.eval()
    return history
