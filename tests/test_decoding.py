"""best_spans equals a brute-force reference: every (start, end) pair scored in plain Python."""

import itertools

import pytest
import torch

from corpusqa.reader.decoding import best_spans


def brute_force(start, end, context, max_answer_length, n_best):
    """All allowed spans of one window, sorted by logit then (start, end): the definition best_spans implements."""
    spans = [
        (start[s] + end[e], s, e)
        for s, e in itertools.product(range(len(start)), repeat=2)
        if context[s] and context[e] and s <= e < s + max_answer_length
    ]
    spans.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(s, e, logit) for logit, s, e in spans[:n_best]]


def random_window_batch(seed, windows=6, length=40, ties=False):
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: many equal logits, so tie-breaking is exercised
        start = torch.randint(0, 3, (windows, length), generator=g).float()
        end = torch.randint(0, 3, (windows, length), generator=g).float()
    else:
        start = torch.randn(windows, length, generator=g)
        end = torch.randn(windows, length, generator=g)
    context = torch.zeros(windows, length, dtype=torch.bool)
    for w in range(windows):  # [CLS] question [SEP] context [SEP] padding, with varying lengths
        question = int(torch.randint(2, 8, (1,), generator=g))
        used = int(torch.randint(question + 3, length + 1, (1,), generator=g))
        context[w, question + 2 : used - 1] = True
    return start, end, context


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_answer_length,n_best", [(1, 5), (4, 20), (30, 7), (100, 500)])
@pytest.mark.parametrize("ties", [False, True])
def test_best_spans_equal_brute_force(seed, max_answer_length, n_best, ties):
    start, end, context = random_window_batch(seed, ties=ties)
    spans = best_spans(start, end, context, max_answer_length, n_best)
    for w in range(start.shape[0]):
        expected = brute_force(start[w].tolist(), end[w].tolist(), context[w].tolist(), max_answer_length, n_best)
        valid = spans.valid[w]
        got = list(zip(spans.starts[w][valid].tolist(), spans.ends[w][valid].tolist(), spans.logits[w][valid].tolist()))
        assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in expected]
        assert [l for _, _, l in got] == pytest.approx([l for _, _, l in expected], abs=1e-6)
        assert not valid[len(expected):].any(), "slots past the allowed spans must be invalid"
        assert spans.null_logits[w].item() == pytest.approx(start[w, 0].item() + end[w, 0].item())


def test_window_without_context_has_no_valid_span():
    start, end, _ = random_window_batch(0, windows=2)
    spans = best_spans(start, end, torch.zeros_like(start, dtype=torch.bool), 30, 5)
    assert not spans.valid.any()


def test_rejects_non_positive_limits():
    start, end, context = random_window_batch(0)
    with pytest.raises(ValueError):
        best_spans(start, end, context, 0, 5)


@pytest.mark.parametrize("n_best", [2, 3, 4])
def test_equal_logits_rank_by_start_then_end_inside_and_across_the_cut(n_best):
    # Three spans tie for the best logit (2.0: (2,2), (2,3), (3,3)); the rest score lower. n_best 3 keeps exactly
    # the tied ones, 2 cuts through the tie, 4 keeps them and one more: each ranks ties by (start, end).
    start = torch.tensor([[0.0, -9.0, 1.0, 1.0, -9.0, -9.0]])
    end = torch.tensor([[0.0, -9.0, 1.0, 1.0, 0.5, -9.0]])
    context = torch.tensor([[False, False, True, True, True, True]])
    spans = best_spans(start, end, context, 30, n_best)
    expected = brute_force(start[0].tolist(), end[0].tolist(), context[0].tolist(), 30, n_best)
    assert list(zip(spans.starts[0].tolist(), spans.ends[0].tolist())) == [(s, e) for s, e, _ in expected]
    assert [(s, e) for s, e, _ in expected][:3] == [(2, 2), (2, 3), (3, 3)][:n_best]
