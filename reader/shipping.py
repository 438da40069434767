"""Turn trained readers into the folder that ships: averaged weights, fp16, and the record of how it was made.

A shipped folder says how it was made without the run folders it came from: its ``training_args.json`` is
the record `corpusqa train` left, with the records of the runs it continued (``earlier_phases``, oldest
first) or, for an average, the full history of every reader averaged (``average_of``).
"""

from __future__ import annotations

import json
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
