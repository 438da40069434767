"""Bounds of the numbers people give the CLI: a value outside them is refused in one line naming the flag,
before any model loads or any store opens. ``--top-k 0`` would print no answer and say that the reader
abstains; ``--passages 1000000000`` would read the whole corpus for one question.

Flags are found by their destination name, whichever command has them (``train`` checks its own settings).
"""

from __future__ import annotations

import argparse
import math

#: Flag (by destination) -> (least, most) accepted value.
BOUNDS: dict[str, tuple[int, int]] = {
    "top_k": (1, 100),  # answers shown per question
    "passages": (1, 1_000),  # passages read per question: ~8 s of reading at the top on a CPU
    "limit": (1, 1_000_000_000),
    "max_seq_length": (32, 8_192),
    "doc_stride": (1, 8_192),
    "max_question_length": (1, 8_192),
    "max_answer_length": (1, 1_024),
    "n_best_per_window": (1, 1_000),
    "batch_size": (1, 4_096),
    "context_chars": (0, 100_000),
    "pairs_per_chunk": (1, 1_000_000),
    "max_upload_mb": (1, 100_000),
    "port": (1, 65_535),
    "max_file_mb": (1, 100_000),
    "max_inflated_mb": (1, 100_000),
    "max_characters": (1, 10_000_000_000),
    "max_passages": (1, 100_000_000),
}
#: Flags that take any number of either sign (logits), but a number: not NaN or infinite.
FINITE = ("no_answer_threshold",)


def check_bounds(args: argparse.Namespace) -> None:
    """Raise ValueError, naming the flag, for a value given outside ``BOUNDS`` or a non-finite ``FINITE`` one."""
    if args.command == "train":
        return
    for name, (least, most) in BOUNDS.items():
        value = getattr(args, name, None)
        if value is not None and not least <= value <= most:
            raise ValueError(f"{_flag(name)} must be from {least:,} to {most:,}, not {value:,}")
    for name in FINITE:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{_flag(name)} must be a finite number, not {value}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
