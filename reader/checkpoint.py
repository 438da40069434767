"""Training checkpoints that a run resumes from exactly: weights, optimizer, schedule, RNG states and data position.

A run folder holds ``run.json`` (the run's ``TrainConfig``, written once at its start), ``curve.jsonl`` (one line
per dev-sample evaluation) and at most one complete checkpoint, ``checkpoint-<step>/state.pt``. A checkpoint is
written into ``checkpoint-<step>.tmp`` and renamed into place, so a folder without ``.tmp`` is always whole: a
process killed while writing leaves the previous checkpoint to resume from.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

RUN_FILE = "run.json"
CURVE_FILE = "curve.jsonl"
_PREFIX = "checkpoint-"
_STATE = "state.pt"


@dataclass
class TrainingState:
    """Where a run stands between two optimizer steps: everything the next step depends on.

    ``epoch_generator`` is the data-order generator's state at the start of ``epoch``: replaying it rebuilds that
    epoch's batch order, of which the first ``step_in_epoch`` optimizer steps are done.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    epoch: int
    step_in_epoch: int
    global_step: int
    epoch_generator: torch.Tensor
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] = field(default_factory=list)
    epoch_loss_sum: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)
    #: Seconds spent in optimizer steps across every process of the run (evaluation and loading excluded).
    train_seconds: float = 0.0


def save_checkpoint(run_dir: Path, state: TrainingState) -> Path:
    """Write ``state`` as the run's newest checkpoint, atomically, and drop the older ones."""
    final = run_dir / f"{_PREFIX}{state.global_step:07d}"
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    with open(temporary / _STATE, "wb") as handle:
        torch.save(vars(state), handle)
        handle.flush()
        os.fsync(handle.fileno())
    if final.exists():  # a step checkpointed twice (a signal right after a timed checkpoint)
        shutil.rmtree(final)
    os.replace(temporary, final)
    _fsync_dir(run_dir)
    for older in _checkpoints(run_dir):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of the run, if any."""
    found = _checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(folder: Path) -> TrainingState:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain Python values only)."""
    return TrainingState(**torch.load(folder / _STATE, map_location="cpu", weights_only=True))


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Record the run's settings once, so ``--resume`` needs nothing but the folder."""
    _write_atomic(run_dir / RUN_FILE, json.dumps(config, indent=2) + "\n")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir}: not a training run folder (no {RUN_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))


def append_curve_point(run_dir: Path, point: dict[str, Any]) -> None:
    with open(run_dir / CURVE_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(point) + "\n")


def read_curve(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / CURVE_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_curve(run_dir: Path, global_step: int) -> None:
    """Forget evaluations made after ``global_step``: a resumed run redoes those steps and measures them again."""
    kept = [p for p in read_curve(run_dir) if p["step"] <= global_step]
    _write_atomic(run_dir / CURVE_FILE, "".join(json.dumps(p) + "\n" for p in kept))


def _checkpoints(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.name.startswith(_PREFIX) and p.suffix != ".tmp" and (p / _STATE).is_file()]
    return sorted(found, key=lambda p: p.name)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
