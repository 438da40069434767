"""Which batch size reads fastest on this machine, per precision: a paired sweep in one process.

The reader forwards a question's windows longest first, a few at a time, each batch padded to its own longest.
How many windows a forward pass should hold depends on the CPU (its caches, its matrix units) and on the
precision, so ``hardware.reading_batch_size`` decides it from the CPU's features. This script measures the
choice: the shipped reader (or ``--model``) answers the same questions over the same passages
(``reader_speed.workload``) in every precision and batch size asked for, the variants taking turns ``--rounds``
times so that a busy moment of the machine falls on all of them; each row keeps its fastest round.

    python benchmarks/reader_batch.py [--model DIR] [--questions 40] [--passages 20]
        [--precisions float32,bfloat16,int8] [--batch-sizes 2,4,8] [--rounds 2]

Columns: passages per second; the ratio to the same precision at the batch size ``auto`` picks here
(``reading_batch_size``); how many top answers equal fp32's at that batch size. int8 rows re-read close calls in
fp32, as ``auto`` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from reader_speed import MAX_ANSWER, workload

REPOSITORY = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPOSITORY / "models" / "minilm-squad"))
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--passages", type=int, default=20)
    parser.add_argument("--precisions", default="float32,bfloat16,int8")
    parser.add_argument("--batch-sizes", default="2,4,8")
    parser.add_argument("--rounds", type=int, default=2, help="times every variant reads the whole workload")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from haystack import Document

    from corpusqa.reader import ReadOptions, load_reader_model, read
    from corpusqa.reader.hardware import cpu_features, reading_batch_size

    items = workload(args.questions, args.passages)
    docs = [[Document(id=p["id"], content=p["text"]) for p in item["passages"]] for item in items]
    precisions = args.precisions.split(",")
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    readers = {precision: load_reader_model(args.model, device="cpu", dtype=precision) for precision in precisions}
    chosen = reading_batch_size(torch.device("cpu"))
    sizes = sorted(set(sizes) | {chosen})
    base = ReadOptions(top_k=1, no_answer=False, max_answer_length=MAX_ANSWER)
    variants = [(precision, size) for precision in precisions for size in sizes]

    def answer_all(precision: str, size: int) -> tuple[float, list]:
        options = dataclasses.replace(base, batch_size=size)
        started = time.perf_counter()
        best = [read(readers[precision], item["question"], d, options)[0] for item, d in zip(items, docs)]
        seconds = time.perf_counter() - started
        return seconds, [(a.document.id, a.document_offset.start, a.document_offset.end) for a in best]

    for precision in precisions:  # warm-up: lazy initialisation, allocator, kernels
        answer_all(precision, chosen)
    seconds: dict[tuple[str, int], float] = {}
    tops: dict[tuple[str, int], list] = {}
    for _ in range(args.rounds):
        for variant in variants:
            spent, tops[variant] = answer_all(*variant)
            seconds[variant] = min(spent, seconds.get(variant, float("inf")))

    passages = args.questions * args.passages
    reference = tops.get(("float32", chosen))
    print(f"\n{args.questions} questions x {args.passages} passages, {os.environ.get('OMP_NUM_THREADS', os.cpu_count())} "
          f"threads, {cpu_features()}, auto batch size here: {chosen}, best of {args.rounds} rounds\n")
    print(f"{'precision':<10}{'batch':>6}{'passages/s':>12}{'vs auto batch':>15}{'top = fp32':>12}")
    for precision, size in variants:
        ratio = seconds[(precision, chosen)] / seconds[(precision, size)]
        same = f"{sum(a == b for a, b in zip(tops[(precision, size)], reference))}/{args.questions}" if reference else ""
        mark = " (auto)" if size == chosen else ""
        print(f"{precision:<10}{size:>6}{passages / seconds[(precision, size)]:>12.1f}{ratio:>14.2f}x{same:>12}{mark}")


if __name__ == "__main__":
    main()
