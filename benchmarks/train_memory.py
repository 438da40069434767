"""Peak memory of training steps over many batch widths, with oneDNN's kernel cache at its default and capped.

`corpusqa train` pads each batch to its own longest window (rounded up to 16 tokens), so a run meets a score of
batch widths, and oneDNN compiles and keeps kernels, with scratch memory, for each shape it meets. This measures
what that costs: steps of ``--batch`` random windows cycling through the widths 64, 80, ..., 384 (twice by
default), forward and backward under the autocast training uses on this machine, and AdamW, each setting in a
fresh process. The capacity is set as `corpusqa train` sets it: in the process, after torch is imported and
before its first kernel (oneDNN reads ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` once, then).

    python benchmarks/train_memory.py --model MINILM_FOLDER --cache default --cache 32 --cycles 2

Prints one row per (model, cache): peak and final resident memory, and seconds per step. If a training run is
using the machine, pause it first (``kill -STOP PID``, then ``kill -CONT PID``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WIDTHS = list(range(64, 385, 16))


def _resident_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def run_steps(model_dir: str, cache: str, batch: int, cycles: int) -> dict:
    """In this process: the steps, then peak and final resident memory (GB) and mean s/step."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    from corpusqa.reader.hardware import KERNEL_CACHE_VARIABLE, training_autocast_dtype

    if cache != "default":
        os.environ[KERNEL_CACHE_VARIABLE] = cache

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    amp = training_autocast_dtype(torch.device("cpu"))
    started = time.perf_counter()
    widths = WIDTHS * cycles
    for width in widths:
        ids = torch.randint(5, model.config.vocab_size, (batch, width))
        labels = torch.randint(0, width, (batch,))
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), start_positions=labels,
                         end_positions=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "final_gb": _resident_gb(),
        "s_per_step": (time.perf_counter() - started) / len(widths),
        "steps": len(widths),
        "autocast": str(amp).replace("torch.", "") if amp else "none",
    }


def measure(model_dir: str, cache: str, batch: int, cycles: int) -> dict:
    """``run_steps`` in a child process started without the cache variable."""
    from corpusqa.reader.hardware import KERNEL_CACHE_VARIABLE

    env = {name: value for name, value in os.environ.items() if name != KERNEL_CACHE_VARIABLE}
    child = [sys.executable, __file__, "--child", "--model", model_dir, "--cache", cache, "--batch", str(batch),
             "--cycles", str(cycles)]
    out = subprocess.run(child, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a model folder (repeatable)")
    parser.add_argument("--cache", action="append", help="default, or a capacity (repeatable; default: default and 32)")
    parser.add_argument("--batch", type=int, default=32, help="windows per step (default 32)")
    parser.add_argument("--cycles", type=int, default=2, help=f"passes over the {len(WIDTHS)} widths (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_steps(args.model[0], args.cache[0], args.batch, args.cycles)))
        return
    caches = args.cache or ["default", "32"]
    print(f"{args.batch} windows a step, widths {WIDTHS[0]}..{WIDTHS[-1]} by 16, {args.cycles} passes, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print("| model | kernel cache | autocast | steps | peak GB | final GB | s/step |")
    print("|---|---|---|---|---|---|---|")
    for model_dir in args.model:
        for cache in caches:
            row = measure(model_dir, cache, args.batch, args.cycles)
            print(f"| {model_dir} | {cache} | {row['autocast']} | {row['steps']} | "
                  f"{row['peak_gb']:.2f} | {row['final_gb']:.2f} | {row['s_per_step']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
