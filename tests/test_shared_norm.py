"""Shared normalization: the loss against a brute-force reference, and batches that never split a question."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corpusqa.reader.shared_norm import shared_norm_loss
from corpusqa.reader.training import Features, TrainConfig, epoch_batches


def _reference(start, end, mask, starts, ends, groups) -> float:
    """The loss written out position by position: -log of the gold probability mass under one softmax per group."""
    total = []
    for g in sorted(set(groups.tolist())):
        rows = [w for w in range(len(groups)) if groups[w] == g]
        answerable = any(starts[w] != 0 for w in rows)
        parts = []
        for logits, labels in ((start, starts), (end, ends)):
            everything = [logits[w, t].item() for w in rows for t in range(logits.shape[1]) if mask[w, t]]
            if answerable:
                gold = [logits[w, labels[w]].item() for w in rows if starts[w] != 0]
            else:
                gold = [logits[w, 0].item() for w in rows]
            parts.append(math.log(sum(map(math.exp, everything))) - math.log(sum(map(math.exp, gold))))
        total.append(sum(parts) / 2)
    return sum(total) / len(total)


def _batch(seed: int):
    generator = torch.Generator().manual_seed(seed)
    windows, length = 7, 12
    start = torch.randn(windows, length, generator=generator) * 3
    end = torch.randn(windows, length, generator=generator) * 3
    lengths = torch.tensor([12, 9, 12, 6, 10, 12, 8])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    groups = torch.tensor([4, 4, 9, 9, 9, 2, 2])  # group 2 has no answer in any window: it is trained to abstain
    starts = torch.tensor([3, 0, 5, 0, 2, 0, 0])  # group 9's answer lies in two overlapping windows
    ends = torch.tensor([4, 0, 7, 0, 3, 0, 0])
    return start, end, mask, starts, ends, groups


@pytest.mark.parametrize("seed", range(5))
def test_the_loss_equals_the_position_by_position_reference(seed):
    start, end, mask, starts, ends, groups = _batch(seed)
    got = shared_norm_loss(start, end, mask, starts, ends, groups).item()
    assert got == pytest.approx(_reference(start, end, mask, starts, ends, groups), rel=1e-5)


def test_one_unpadded_window_per_question_is_the_squad_loss():
    start, end = torch.randn(4, 10), torch.randn(4, 10)
    starts, ends = torch.tensor([1, 2, 3, 4]), torch.tensor([2, 5, 3, 6])
    expected = (F.cross_entropy(start, starts) + F.cross_entropy(end, ends)) / 2
    got = shared_norm_loss(start, end, torch.ones(4, 10), starts, ends, torch.arange(4))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_negative_window_competes_with_the_gold_one():
    start, end, mask, starts, ends, groups = _batch(0)
    base = shared_norm_loss(start, end, mask, starts, ends, groups)
    louder = start.clone()
    louder[1, 5] += 5.0  # a token of group 4's negative window gets a higher start logit
    assert shared_norm_loss(louder, end, mask, starts, ends, groups) > base
    shifted = start.clone()
    shifted[groups == 4] += 3.0  # all of one group's logits shifted together: the softmax does not change
    assert shared_norm_loss(shifted, end, mask, starts, ends, groups).item() == pytest.approx(base.item(), rel=1e-5)


def test_padding_takes_no_part():
    start, end, mask, starts, ends, groups = _batch(1)
    noisy = start.masked_fill(mask == 0, 50.0)
    assert shared_norm_loss(noisy, end, mask, starts, ends, groups).item() == pytest.approx(
        shared_norm_loss(start, end, mask, starts, ends, groups).item(), rel=1e-6
    )


def test_gradients_flow_to_every_window_of_a_group():
    start, end, mask, starts, ends, groups = _batch(2)
    start.requires_grad_(True)
    shared_norm_loss(start, end, mask, starts, ends, groups).backward()
    assert all(start.grad[w].abs().sum() > 0 for w in range(len(groups)))
    assert torch.isfinite(start.grad).all()


def _features(group_sizes: list[int], seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    group_index = np.repeat(np.arange(len(group_sizes)), group_sizes)
    rng.shuffle(group_index)
    lengths = rng.integers(20, 384, size=len(group_index))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    zeros = np.zeros(len(group_index), dtype=np.int64)
    return Features({"input_ids": np.zeros(bounds[-1], np.int32)}, bounds, zeros, zeros, zeros, group_index)


def test_shared_batches_hold_whole_questions_and_every_window_once():
    sizes = list(np.random.default_rng(1).integers(1, 9, size=400))
    features = _features(sizes)
    config = TrainConfig(train_file="", base_model="", output_dir="", batch_size=32, objective="shared")
    batches = epoch_batches(features, config, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(features)))
    for batch in batches:
        for group in set(features.group_index[batch].tolist()):
            assert (features.group_index[batch] == group).sum() == sizes[group], "a question is never split"
    assert abs(np.mean([len(b) for b in batches]) - 32) < 4  # batches hold batch_size windows on average
    again = epoch_batches(features, config, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
