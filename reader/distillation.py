"""Knowledge distillation: a large reader (the teacher) teaches a small one (the student) where answers lie.

A hard label says only which token starts the answer; the teacher's start and end distributions also say
which other tokens are plausible, and a small reader learns more from them than from the labels alone
(Hinton et al. 2015; DistilBERT's and TinyBERT's SQuAD fine-tuning). ``corpusqa train --teacher DIR``
trains on ``(1 - weight) * hard-label loss + weight * T^2 * KL(teacher_T || student_T)`` for starts and ends,
each softmax at temperature ``T`` over the positions that both models have. The hard-label loss is the
training objective's: each window's own (``window``) or one softmax over a question's passages (``shared``).

Where the teacher's softmax runs is ``distill_softmax``. ``window`` (the default): over each window alone, so
the teacher shapes the spans within a window while the hard labels alone set how windows compare (a softmax
is blind to a shift of all of a window's logits). ``question`` (with the ``shared`` objective): over all of a
question's windows together, so the student also learns how the teacher ranks passages against each other.
Only a teacher whose logits compare across passages has that to teach: one trained for a corpus itself
(``shared``); a teacher trained on gold paragraphs alone gives every window an arbitrary offset.

Teacher and student need not share a tokenizer (all-mpnet-base-v2 teaching all-MiniLM-L6-v2, a BPE teacher
teaching a WordPiece student). The teacher reads each student window as text, the window's question and
exactly the passage characters it covers, and its logits are carried to the student's tokens by character
(``carry_over``). The teacher's logits for a window are computed once and kept for later epochs and resumed
runs (``TeacherCache``), keyed by the teacher's weights and the student's windows, so they are never stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .backend import TORCH_DTYPES
from .hardware import reading_batch_size
from .model import load_reader_model
from .shared_norm import group_logsumexp
from .windows import Windows, run_windows

#: Off the passage: question tokens, separators, padding (CLS is marked apart).
OFF_PASSAGE = -1
#: The student's CLS token, which takes the teacher's CLS logits ("no answer in this window").
CLS_MARK = -2
CACHE_FOLDER = "teacher-cache"


def carry_over(
    student_offsets: np.ndarray,
    teacher_offsets: np.ndarray,
    teacher_on_passage: np.ndarray,
    teacher_cls: int,
    teacher_start: np.ndarray,
    teacher_end: np.ndarray,
    shift: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's start and end logits on the student's tokens.

    Parameters:
        student_offsets: [n, 2] each student token's characters in the passage; ``OFF_PASSAGE`` rows for tokens
            outside it, ``CLS_MARK`` for its CLS token.
        teacher_offsets: [m, 2] each teacher token's characters in the text the teacher read (the passage from
            character ``shift`` on).
        teacher_on_passage: [m] whether the teacher token is a passage token.
        teacher_cls: the position of the teacher's CLS token.
        teacher_start, teacher_end: [m] the teacher's logits.
        shift: where the teacher's text starts in the passage.

    Invariants of the result ([n] float32 each):
      - a student passage token gets the start logit of the teacher passage token holding its first character,
        and the end logit of the one holding its last (the same token's, where both cut the text alike);
      - the student's CLS gets the teacher's CLS logits;
      - every other position, and a token whose characters no teacher token holds, is -inf: it takes no part.
    """
    n = len(student_offsets)
    start = np.full(n, -np.inf, dtype=np.float32)
    end = np.full(n, -np.inf, dtype=np.float32)
    cls = student_offsets[:, 0] == CLS_MARK
    start[cls], end[cls] = teacher_start[teacher_cls], teacher_end[teacher_cls]
    kept = np.flatnonzero(teacher_on_passage & (teacher_offsets[:, 1] > teacher_offsets[:, 0]))
    if not len(kept):
        return start, end
    spans = teacher_offsets[kept] + shift
    order = np.argsort(spans[:, 0], kind="stable")
    kept, spans = kept[order], spans[order]
    on_passage = student_offsets[:, 0] >= 0
    for logits, source, char in (
        (start, teacher_start, student_offsets[:, 0]),
        (end, teacher_end, student_offsets[:, 1] - 1),
    ):
        holder = np.searchsorted(spans[:, 0], char, side="right") - 1
        found = on_passage & (holder >= 0)
        found[found] &= char[found] < spans[holder[found], 1]
        logits[found] = source[kept[holder[found]]]
    return start, end


class Teacher:
    """A trained reader that gives student windows its start and end logits (see ``carry_over``).

    Loaded as every reader is (``load_reader_model``: a model without a trained QA head or a fast tokenizer is
    refused) and run through its backend, in the training run's precision.

    Parameters:
        folder: the teacher: any extractive-QA model folder or hub id.
        device: where it runs (the student's device).
        amp_dtype: the autocast dtype of the training run, or None for fp32.
    """

    def __init__(self, folder: str | Path, device: torch.device, amp_dtype: torch.dtype | None) -> None:
        precision = next((name for name, dtype in TORCH_DTYPES.items() if dtype == amp_dtype), "float32")
        self.reader = load_reader_model(folder, device=device, dtype=precision)

    def fingerprint(self) -> str:
        """A hash of the teacher's weights and config, which its cached logits depend on."""
        digest = hashlib.sha256()
        local = Path(self.reader.name)
        if local.is_dir():
            for path in [*sorted(local.glob("*.safetensors")), *sorted(local.glob("*.bin")), local / "config.json"]:
                with path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 24), b""):
                        digest.update(block)
        else:  # a hub id: the weights as loaded
            for name, tensor in sorted(self.reader.backend.model.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def read(
        self, questions: list[str], passages: list[str], offsets: list[np.ndarray], batch_size: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start and end logits on the student tokens of each window (question, passage, its student offsets).

        The teacher reads as the reader does (``run_windows``): longest first, ``batch_size`` windows at a time
        (default: ``hardware.reading_batch_size``), each batch padded only to its own longest, rounded up to
        ``PAD_MULTIPLE``: the widths the teacher meets stay few, and so do the kernels oneDNN compiles for them."""
        spans = []
        for passage, window in zip(passages, offsets):
            on = window[:, 0] >= 0
            spans.append((int(window[on, 0].min()), int(window[on, 1].max())) if on.any() else (0, 0))
        tokenizer = self.reader.tokenizer
        encoded = tokenizer(
            questions,
            [passage[a:b] for passage, (a, b) in zip(passages, spans)],
            truncation="only_second",
            max_length=self.reader.max_positions,
            return_token_type_ids=True,
            padding=False,
        )
        windows = Windows(encodings=list(encoded.encodings), pair_index=np.arange(len(questions)))
        results: list[tuple[np.ndarray, np.ndarray]] = [None] * len(questions)  # type: ignore[list-item]
        for batch in run_windows(self.reader, windows, batch_size or reading_batch_size(self.reader.device)):
            start_logits, end_logits = batch.start_logits.float().cpu().numpy(), batch.end_logits.float().cpu().numpy()
            on_passage = batch.context_mask.cpu().numpy()
            for row, index in enumerate(batch.window_index):
                encoding = encoded.encodings[index]
                n = len(encoding.ids)
                cls = encoding.ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in encoding.ids else 0
                results[index] = carry_over(offsets[index], np.asarray(encoding.offsets), on_passage[row, :n], cls,
                                            start_logits[row, :n], end_logits[row, :n], spans[index][0])
        return results


class TeacherCache:
    """The teacher's logits on every student token, filled as windows are first trained on.

    Flat float16 arrays aligned with the student's windows (``bounds``), a flag per window, and a key: the
    teacher's fingerprint and a hash of the windows. ``open`` reuses a saved cache only under the same key.
    """

    def __init__(self, key: str, bounds: np.ndarray) -> None:
        self.key, self.bounds = key, bounds
        self.start = np.full(int(bounds[-1]), -np.inf, dtype=np.float16)
        self.end = np.full(int(bounds[-1]), -np.inf, dtype=np.float16)
        self.done = np.zeros(len(bounds) - 1, dtype=bool)

    @classmethod
    def open(cls, folder: Path, key: str, bounds: np.ndarray) -> TeacherCache:
        cache = cls(key, bounds)
        folder = folder / CACHE_FOLDER
        try:
            saved_key = json.loads((folder / "key.json").read_text())["key"]
        except (OSError, ValueError, KeyError):
            return cache
        if saved_key == key:
            with np.load(folder / "logits.npz") as saved:
                cache.start, cache.end, cache.done = saved["start"], saved["end"], saved["done"]
        return cache

    def save(self, folder: Path) -> None:
        """Write the cache atomically (a temporary file renamed into place), then its key."""
        folder = folder / CACHE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "logits.partial.npz"
        with partial.open("wb") as handle:
            np.savez(handle, start=self.start, end=self.end, done=self.done)
        os.replace(partial, folder / "logits.npz")
        (folder / "key.json").write_text(json.dumps({"key": self.key, "windows": int(self.done.sum())}))

    def missing(self, indices: np.ndarray) -> np.ndarray:
        return indices[~self.done[indices]]

    def put(self, window: int, start: np.ndarray, end: np.ndarray) -> None:
        lo, hi = self.bounds[window], self.bounds[window + 1]
        self.start[lo:hi], self.end[lo:hi] = start, end
        self.done[window] = True

    def batch(self, indices: np.ndarray, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, width] float32 logits of the windows, -inf past each window's end."""
        out = np.full((2, len(indices), width), -np.inf, dtype=np.float32)
        for row, window in enumerate(indices):
            lo, hi = self.bounds[window], self.bounds[window + 1]
            out[0, row, : hi - lo], out[1, row, : hi - lo] = self.start[lo:hi], self.end[lo:hi]
        return torch.from_numpy(out[0]), torch.from_numpy(out[1])


def windows_key(teacher_fingerprint: str, input_ids: np.ndarray, bounds: np.ndarray) -> str:
    """What a cache depends on: the teacher and the student's windows, token for token."""
    digest = hashlib.sha256(teacher_fingerprint.encode())
    digest.update(np.ascontiguousarray(input_ids).tobytes())
    digest.update(np.ascontiguousarray(bounds).tobytes())
    return digest.hexdigest()


#: Where the teacher's softmax runs: over each window, or over all of a question's windows together.
DISTILL_SOFTMAXES = ("window", "question")


def distillation_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    teacher_start: torch.Tensor,
    teacher_end: torch.Tensor,
    temperature: float,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the start and end distributions at temperature T, averaged.

    Each softmax runs over the positions where the teacher has a logit (finite), so question tokens, padding
    and passage the teacher could not read take no part, for either model. Every window has one such position
    at least: its CLS token.

    Parameters:
        start_logits, end_logits: [W, L] the student's logits.
        teacher_start, teacher_end: [W, L] the teacher's, -inf where it has none.
        temperature: T; above 1 the teacher's runners-up weigh more.
        groups: [W] each window's question, for one softmax over all windows of a question (the KL averaged
            over questions); None: one softmax per window (averaged over windows).
    """
    # One softmax per group of windows; per window, each window is a group of its own.
    if groups is None:
        count = len(start_logits)
        group_of = torch.arange(count, device=start_logits.device)
    else:
        group_ids, group_of = torch.unique(groups, return_inverse=True)
        count = len(group_ids)
    losses = []
    for student, teacher in ((start_logits, teacher_start), (end_logits, teacher_end)):
        kept = torch.isfinite(teacher)
        student = (student.float() / temperature).masked_fill(~kept, float("-inf"))
        teacher = (teacher / temperature).masked_fill(~kept, float("-inf"))
        log_student = student - group_logsumexp(torch.logsumexp(student, dim=1), group_of, count)[group_of, None]
        log_teacher = teacher - group_logsumexp(torch.logsumexp(teacher, dim=1), group_of, count)[group_of, None]
        terms = torch.where(kept, log_teacher.exp() * (log_teacher - log_student), torch.zeros_like(log_student))
        losses.append(torch.zeros(count, device=terms.device).index_add(0, group_of, terms.sum(dim=-1)).mean())
    return temperature**2 * (losses[0] + losses[1]) / 2
