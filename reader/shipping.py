"""Turn trained readers into the folder that ships: averaged weights, fp16, and the record of how it was made.

A shipped folder says how it was made without the run folders it came from: its ``training_args.json`` is
the record `corpusqa train` left, with the records of the runs it continued (``earlier_phases``, oldest
first) or, for an average, the full history of every reader averaged (``average_of``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

from .model import READER_SETTINGS_FILE

#: What `corpusqa train` writes into a run folder, and what a shipped folder carries on.
TRAINING_RECORD_FILE = "training_args.json"

_WEIGHTS_FILE = "model.safetensors"


def export_half(source: str | Path, target: str | Path) -> Path:
    """Write a trained reader in fp16 (half the size, same answers) with its tokenizer and tuned settings.

    This is how the shipped reader under models/ is made from a `corpusqa train` output folder or from an
    average of such folders (`average_readers`).

    :param source: folder of the trained reader, in any precision.
    :param target: folder to write; created if missing, its files replaced.
    :returns: ``target``.
    """
    source, target = Path(source), Path(target)
    model = AutoModelForQuestionAnswering.from_pretrained(source, dtype=torch.float32)
    target.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    if (source / READER_SETTINGS_FILE).is_file():
        (target / READER_SETTINGS_FILE).write_bytes((source / READER_SETTINGS_FILE).read_bytes())
    history = training_history(source)
    if history is not None:
        (target / TRAINING_RECORD_FILE).write_text(json.dumps(history, indent=2) + "\n")
    return target


def average_readers(sources: list[str | Path], target: str | Path) -> Path:
    """Write the element-wise mean of the weights of readers fine-tuned from one model, in fp32.

    Averaging a fine-tuned model with another fine-tuned from it (Wortsman et al. 2022, "Robust fine-tuning
    of zero-shot models") often scores above either; it costs no training. The tokenizer, configuration and
    tuned settings are the first source's: run `corpusqa tune` and `eval squad --save-threshold` on the
    average before shipping it.

    :param sources: two or more reader folders with the same architecture and the same tensor names and
        shapes (each a ``model.safetensors``).
    :param target: folder to write; created if missing.
    :returns: ``target``.
    :raises ValueError: fewer than two sources, a source without ``config.json`` or weights, or one whose
        architecture, tensor names or shapes differ from the first's (the message names the folder and the
        tensor).
    """
    folders = [Path(source) for source in sources]
    if len(folders) < 2:
        raise ValueError(f"averaging needs two or more readers, got {len(folders)}")
    for folder in folders:
        if not (folder / _WEIGHTS_FILE).is_file() or not (folder / "config.json").is_file():
            raise ValueError(f"{folder} is not a reader folder: it needs config.json and {_WEIGHTS_FILE}")
    first_type = AutoConfig.from_pretrained(folders[0]).model_type
    total: dict[str, torch.Tensor] = {}
    for folder in folders:
        if (model_type := AutoConfig.from_pretrained(folder).model_type) != first_type:
            raise ValueError(
                f"{folder} is a {model_type} model, {folders[0]} a {first_type} model: they cannot be averaged"
            )
        weights = load_file(folder / _WEIGHTS_FILE)
        if total and weights.keys() != total.keys():
            differing = sorted(weights.keys() ^ total.keys())
            raise ValueError(
                f"{folder / _WEIGHTS_FILE} and {folders[0] / _WEIGHTS_FILE} differ in tensor {differing[0]}"
            )
        for name, tensor in weights.items():
            if name not in total:
                total[name] = tensor.to(torch.float64)
            elif tensor.shape != total[name].shape:
                raise ValueError(
                    f"{folder / _WEIGHTS_FILE}: tensor {name} has shape {tuple(tensor.shape)}, "
                    f"{tuple(total[name].shape)} in {folders[0] / _WEIGHTS_FILE}"
                )
            else:
                total[name] += tensor.to(torch.float64)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    AutoConfig.from_pretrained(folders[0]).save_pretrained(target)
    AutoTokenizer.from_pretrained(folders[0]).save_pretrained(target)
    save_file({name: (tensor / len(folders)).to(torch.float32).contiguous() for name, tensor in total.items()},
              target / _WEIGHTS_FILE, metadata={"format": "pt"})
    if (folders[0] / READER_SETTINGS_FILE).is_file():
        (target / READER_SETTINGS_FILE).write_bytes((folders[0] / READER_SETTINGS_FILE).read_bytes())
    record = {"average_of": [training_history(folder) or {"model": str(folder)} for folder in folders]}
    (target / TRAINING_RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return target


@dataclass(frozen=True)
class SoupStep:
    """One reader's turn in a greedy soup: its own score, the score of the mean with it added, and whether it
    stayed (the first reader, the best alone, always does; its ``mean`` is its own score)."""

    reader: Path
    alone: float
    mean: float
    kept: bool


def greedy_soup(readers: Sequence[str | Path], score: Callable[[Path], float], target: str | Path) -> list[SoupStep]:
    """Average only the readers that help: Wortsman et al. 2022's greedy soup, written to ``target``.

    The readers are ranked by ``score`` alone (ties keep the order given); the soup starts with the best, and
    each next reader joins the mean if the mean's score with it is at least the soup's so far. Score on
    questions none of the readers was chosen or tuned on (held-out training articles, ``scripts/split_squad.py``),
    never on the test set the soup is then reported on.

    :param readers: two or more reader folders that ``average_readers`` can average.
    :param score: higher is better, e.g. F1 on held-out questions; called once per reader and once per trial mean.
    :param target: folder for the soup (a copy of the first reader when none other joined it).
    :returns: one step per reader, best alone first.
    :raises ValueError: as ``average_readers``, for fewer than two readers or readers that cannot be averaged.
    """
    folders = [Path(reader) for reader in readers]
    if len(folders) < 2:
        raise ValueError(f"a soup needs two or more readers, got {len(folders)}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-trial-") as scratch:
        average_readers(folders, Path(scratch) / "all")  # readers that cannot be averaged are refused before scoring
        alone = [score(folder) for folder in folders]
        order = sorted(range(len(folders)), key=lambda i: -alone[i])
        first = order[0]
        soup, best, made = [folders[first]], alone[first], folders[first]  # made: the soup's folder so far
        steps = [SoupStep(folders[first], alone[first], alone[first], True)]
        for i in order[1:]:
            trial = average_readers([*soup, folders[i]], Path(scratch) / str(i))
            mean = score(trial)
            kept = mean >= best
            if kept:
                soup, best, made = [*soup, folders[i]], mean, trial
            steps.append(SoupStep(folders[i], alone[i], mean, kept))
        shutil.copytree(made, target, dirs_exist_ok=True)
    return steps


def training_history(folder: str | Path) -> dict | None:
    """The training record of the reader in ``folder`` with the records of every run it continued.

    A run that continued another run (its ``base_model`` a run folder, e.g. a corpus phase after
    gold-paragraph training) gets ``earlier_phases``, the base runs' own records, oldest first. A record
    that already carries its history (a shipped folder, an average) is returned as it is.

    :param folder: a `corpusqa train` output folder, a shipped reader or an average.
    :returns: the record, or None when the folder has none.
    """
    folder = Path(folder)
    record = _training_record(folder)
    if record is None or "config" not in record or "earlier_phases" in record:
        return record
    earlier, seen = [], {folder.resolve()}
    base = Path(record["config"]["base_model"])
    while base.resolve() not in seen and (base_record := _training_record(base)) is not None:
        seen.add(base.resolve())
        complete = "config" not in base_record or "earlier_phases" in base_record
        earlier[:0] = [*base_record.pop("earlier_phases", []), base_record]
        if complete:
            break
        base = Path(base_record["config"]["base_model"])
    if earlier:
        record["earlier_phases"] = earlier
    return record


def _training_record(folder: Path) -> dict | None:
    """The ``training_args.json`` in ``folder``, if there is one."""
    path = folder / TRAINING_RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None
