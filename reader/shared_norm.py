"""Shared normalization: one softmax over all windows of a question, so that logits compare across passages.

Trained window by window, a reader learns where the answer is *given* that the window holds it: every window's
best span looks certain, and raw logits of different passages mean little to each other. ``read`` ranks spans of
many passages by raw logit, so the reader should be trained the way it is used (Clark & Gardner 2018, "Simple and
Effective Multi-Paragraph Reading Comprehension"; Wang et al. 2019, "Multi-passage BERT").

For a group (a question and its passages' windows), with ``P(start = t)`` a softmax over every attended token of
every window in the group:
  * answerable group: the gold starts are the answer's first token in each window that holds the answer;
  * group without an answer (its gold passage left out): the gold starts are every window's CLS token, so
    "no answer" wins over a corpus that does not hold one, on the same scale as the spans;
  * loss = -(log sum P(gold starts) + log sum P(gold ends)) / 2, averaged over the groups of the batch.
A window that does not hold the answer of an answerable group is only a competitor.
"""

from __future__ import annotations

import torch

#: Where question-first models put their CLS token.
CLS = 0


def shared_norm_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    attention_mask: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    groups: torch.Tensor,
) -> torch.Tensor:
    """Mean over groups of the negative log-likelihood of the gold starts and ends under one softmax per group.

    Parameters:
        start_logits, end_logits: [W, L] model outputs for W windows padded to L tokens.
        attention_mask: [W, L], 1 on real tokens; padding takes no part in any softmax.
        start_positions, end_positions: [W] the answer's tokens in each window, CLS (0) where it holds no answer.
        groups: [W] the group of each window; the windows of a group need not be adjacent.
    """
    valid = attention_mask.bool()
    answered = start_positions != CLS  # [W] windows holding the answer
    group_ids, group_of = torch.unique(groups, return_inverse=True)
    count = len(group_ids)
    group_answered = torch.zeros(count, dtype=torch.bool, device=groups.device).index_put(
        (group_of,), answered, accumulate=True
    )
    # gold targets: the labelled token in answer windows of answerable groups; CLS of every window otherwise
    targets_cls = ~group_answered[group_of]  # [W]
    losses = []
    for logits, positions in ((start_logits, start_positions), (end_logits, end_positions)):
        logits = logits.float().masked_fill(~valid, float("-inf"))
        gold = torch.zeros_like(valid)
        rows = torch.arange(len(positions), device=positions.device)
        gold[rows[answered], positions[answered]] = True
        gold[rows[targets_cls], CLS] = True
        everything = group_logsumexp(torch.logsumexp(logits, dim=1), group_of, count)
        gold_logits = logits.masked_fill(~gold, float("-inf"))
        golden = group_logsumexp(torch.logsumexp(gold_logits, dim=1), group_of, count)
        losses.append(everything - golden)
    return (losses[0] + losses[1]).mean() / 2


def group_logsumexp(values: torch.Tensor, group_of: torch.Tensor, count: int) -> torch.Tensor:
    """log sum exp of ``values`` within each group ([W] -> [count], ``group_of`` [W] in 0..count-1); -inf entries
    add nothing."""
    peak = torch.full((count,), float("-inf"), device=values.device).scatter_reduce(
        0, group_of, values, reduce="amax", include_self=True
    )
    safe_peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak)).detach()
    total = torch.zeros(count, device=values.device).index_add(0, group_of, torch.exp(values - safe_peak[group_of]))
    return torch.log(total) + safe_peak
