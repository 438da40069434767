"""Turn start/end logits into ranked answer spans, for many windows at once.

Pure functions of tensors: no model, no tokenizer, so they are tested against a brute-force reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WindowSpans:
    """The n best spans of each of W windows (tensors of shape [W, n]) and each window's no-answer logit.

    Invariants, for every window w and slot i where ``valid[w, i]``:
      - ``context_mask[w, starts[w, i]]`` and ``context_mask[w, ends[w, i]]``: both ends are passage tokens;
      - ``starts[w, i] <= ends[w, i] < starts[w, i] + max_answer_length``;
      - ``logits[w, i] == start_logits[w, starts[w, i]] + end_logits[w, ends[w, i]]``;
      - slots are ordered by logit, highest first, ties broken by (start, end) ascending;
      - invalid slots (fewer valid spans than n) come last, with logit -inf.
    ``null_logits[w] = start_logits[w, 0] + end_logits[w, 0]``: the CLS position, SQuAD 2.0's "no answer here".
    """

    starts: torch.Tensor
    ends: torch.Tensor
    logits: torch.Tensor
    valid: torch.Tensor
    null_logits: torch.Tensor


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor,
    max_answer_length: int,
    n_best: int,
) -> WindowSpans:
    """Score every span (start, end) with end - start < max_answer_length and keep the n best per window.

    A span's logit is start_logit + end_logit, the log of the unnormalised probability the model assigns to
    it; spans are compared on that scale across windows and passages (see ``core.rank``). The band of
    candidate spans is built as a [W, L, max_answer_length] tensor, so there is no Python loop over pairs.
    """
    if max_answer_length < 1 or n_best < 1:
        raise ValueError("max_answer_length and n_best must be at least 1")
    start_logits = start_logits.float()
    end_logits = end_logits.float()
    windows, length = start_logits.shape
    width = min(max_answer_length, length)
    positions = torch.arange(length, device=start_logits.device)
    end_index = positions[:, None] + positions[None, :width]  # [L, width]: end = start + offset
    inside = end_index < length
    end_index = end_index.clamp(max=length - 1)

    scores = start_logits[:, :, None] + end_logits[:, end_index]  # [W, L, width]
    allowed = context_mask[:, :, None] & context_mask[:, end_index] & inside[None]
    scores = scores.masked_fill(~allowed, float("-inf")).reshape(windows, length * width)

    keep = min(n_best, length * width)
    # A stable sort keeps equal logits in flat order, i.e. by (start, end): deterministic ties.
    ranked, order = torch.sort(scores, dim=1, descending=True, stable=True)
    ranked, order = ranked[:, :keep], order[:, :keep]
    starts = torch.div(order, width, rounding_mode="floor")
    ends = starts + order % width
    return WindowSpans(
        starts=starts,
        ends=ends,
        logits=ranked,
        valid=torch.isfinite(ranked),
        null_logits=start_logits[:, 0] + end_logits[:, 0],
    )
