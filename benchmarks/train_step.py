"""Seconds per training step of a QA reader on this machine, per base model and per way of running the step.

One step is what `corpusqa train` does per optimizer update: forward and backward over a batch of windows with
start/end labels, gradient clipping, AdamW. Inputs are random token ids of a fixed width, which is what a step
costs (the content of the tokens does not change the arithmetic).

    python benchmarks/train_step.py --model MINILM_FOLDER --model MPNET_FOLDER --layers 0 --layers 6 \
        --variant fp32 --variant bf16 --threads 1 --threads 2 --steps 6

Prints one row per (model, layers, variant): median s/step over ``--steps`` timed steps after ``--warmup``, and
the ratio to the first row. ``--layers N`` keeps the first N transformer layers (0: all), as a cut model would.
``--device cuda`` times the step on a GPU (bf16 autocasts on CUDA there); ``--json`` also writes the rows to a file.
If a training run is using the machine, pause it first (``kill -STOP PID``, then ``kill -CONT PID``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering


def cut_layers(model, layers: int):
    """Keep the first ``layers`` encoder layers of a BERT- or MPNet-style model (0 keeps all)."""
    if layers:
        encoder = model.base_model.encoder
        encoder.layer = encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    return model


def time_steps(
    model_dir: str, layers: int, variant: str, batch: int, width: int, steps: int, warmup: int, device: str = "cpu"
) -> float:
    torch.manual_seed(0)
    target = torch.device(device)
    model = cut_layers(AutoModelForQuestionAnswering.from_pretrained(model_dir, dtype=torch.float32), layers)
    model = model.to(target).train()
    if variant.endswith("compile"):
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    vocab = model.config.vocab_size
    inputs = {
        "input_ids": torch.randint(5, vocab, (batch, width)),
        "attention_mask": torch.ones(batch, width, dtype=torch.long),
        "start_positions": torch.randint(0, width, (batch,)),
        "end_positions": torch.randint(0, width, (batch,)),
    }
    inputs = {key: value.to(target) for key, value in inputs.items()}
    bf16 = variant.startswith("bf16")
    autocast = torch.autocast(target.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    # CUDA runs asynchronously: wait for the step's kernels before reading the clock.
    synchronize = torch.cuda.synchronize if target.type == "cuda" else lambda: None
    times = []
    for i in range(warmup + steps):
        synchronize()
        began = time.perf_counter()
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="base model folder (repeatable)")
    parser.add_argument("--layers", type=int, action="append", help="keep the first N layers; 0 = all (repeatable)")
    parser.add_argument("--variant", action="append", choices=("fp32", "bf16", "bf16-compile"), help="(repeatable)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=192, help="tokens per window (SQuAD windows average ~180)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, action="append", help="torch intra-op threads (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    for threads in args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        for model in args.model:
            name = Path(model).name if Path(model).name != "model" else Path(model).parent.name
            for layers in args.layers or [0]:
                for variant in args.variant or ["fp32"]:
                    seconds = time_steps(
                        model, layers, variant, args.batch, args.width, args.steps, args.warmup, args.device
                    )
                    rows.append((name, layers, variant, threads, seconds))
                    print(f"  measured {rows[-1]}", flush=True)
    device = f", device {args.device}" if args.device != "cpu" else ""
    print(f"\nbatch {args.batch} x {args.width} tokens, median of {args.steps} steps after {args.warmup}{device}")
    print("| model | layers | variant | threads | s/step | vs first |\n|---|---|---|---|---|---|")
    places = 2 if args.device == "cpu" else 4  # a GPU step takes hundredths of a second
    for name, layers, variant, threads, seconds in rows:
        print(f"| {name} | {layers or 'all'} | {variant} | {threads} | {seconds:.{places}f} | {seconds / rows[0][4]:.2f}x |")
    if args.json:
        settings = {"batch": args.batch, "width": args.width, "steps": args.steps, "warmup": args.warmup, "device": args.device}
        fields = ("model", "layers", "variant", "threads", "seconds_per_step")
        args.json.write_text(json.dumps({**settings, "rows": [dict(zip(fields, row)) for row in rows]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
