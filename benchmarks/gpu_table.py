"""The two small Python steps of benchmarks/gpu_check.sh: describe the machine, and assemble one markdown table.

    python benchmarks/gpu_table.py environment --device cuda --json DIR/environment.json
    python benchmarks/gpu_table.py table --dir DIR [--out gpu_check.md]

``table`` reads what gpu_check.sh left in DIR for each part: ``PART.json`` (its results), ``PART.skip`` (one
line that stands in for its row, e.g. "not fetched") or ``PART.status`` ("EXIT_CODE LIMIT_SECONDS") with
``PART.log``, from which a failed part's row gets its reason.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

#: The parts, in the order of the table: file stem, what is checked, and its precision or model.
READER_PARTS = (("reader-fp16", "fp16"), ("reader-bf16", "bf16"))
TRAIN_PARTS = (("train-minilm", "all-MiniLM-L6-v2"), ("train-mpnet", "all-mpnet-base-v2"))
FAISS_PART = "faiss"

READER_SYSTEMS = {
    "corpusqa": "corpusqa, one call per question",
    "corpusqa-batched": "corpusqa, all questions in one call",
    "corpusqa-fp32": "corpusqa, float32",
    "haystack": "Haystack TransformersExtractiveReader",
    "plain-loop": "plain transformers loop",
}
VARIANTS = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16-compile": "bf16 autocast + torch.compile"}

#: A line that names an exception; the child's own error, not the CalledProcessError of the process above it.
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)|Killed)\b")


def environment(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(device)
        info["gpu"] = properties.name
        info["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpus"] = torch.cuda.device_count()
    return info


def describe(info: dict) -> str:
    if info.get("gpu"):
        machine = f"GPU: {info['gpu']} ({info['gpu_memory_gib']} GiB"
        machine += f", 1 of {info['gpus']})" if info.get("gpus", 1) > 1 else ")"
    else:
        machine = f"device: {info['device']} (a test run of the script, not a GPU)"
    versions = f"torch {info['torch']}, CUDA {info['cuda'] or 'none'}"
    if info.get("cudnn"):
        versions += f", cuDNN {info['cudnn']}"
    if info.get("transformers"):
        versions += f", transformers {info['transformers']}"
    return f"{machine}; {versions}; Python {info['python']}"


def cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def failure(directory: Path, part: str) -> str | None:
    """The row text of a part that did not produce results, or None if it did."""
    skip = directory / f"{part}.skip"
    if skip.exists():
        return skip.read_text().strip()
    status = directory / f"{part}.status"
    if not status.exists():
        return "failed: did not run"
    code, limit = (int(x) for x in status.read_text().split())
    if code in (124, 137):
        return f"failed: timed out after {limit} s"
    if code != 0:
        return f"failed: {reason(directory / f'{part}.log', code)}"
    if not (directory / f"{part}.json").exists():
        return "failed: exited 0 but wrote no results"
    return None


def reason(log: Path, code: int) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    named = [line for line in lines if EXCEPTION_LINE.match(line) and "CalledProcessError" not in line]
    text = (named or lines or [f"exit status {code}"])[-1]
    return text if len(text) <= 160 else text[:157] + "..."


def reader_rows(directory: Path) -> list[tuple]:
    rows = []
    for part, precision in READER_PARTS:
        problem = failure(directory, part)
        if problem:
            rows.append(("reader", "corpusqa and Haystack", precision, problem, ""))
            continue
        data = json.loads((directory / f"{part}.json").read_text())
        check = f"reader, {data['questions']} questions x {data['passages']} passages"
        for system, r in data["systems"].items():
            notes = []
            if r.get("vs_haystack") is not None and system != "haystack":
                notes.append(f"{r['vs_haystack']:.2f}x Haystack")
            if r.get("gpu_peak_mb") is not None:
                notes.append(f"GPU peak {r['gpu_peak_mb']:,.0f} MB")
            notes.append(f"EM {r['em']:.1f}, F1 {r['f1']:.1f}")
            if r.get("top_equals_haystack_pct") is not None and system != "haystack":
                notes.append(f"top answer = Haystack's on {r['top_equals_haystack_pct']:.1f}%")
            result = f"{r['passages_per_s']:,.0f} passages/s"
            rows.append((check, READER_SYSTEMS.get(system, system), precision, result, "; ".join(notes)))
    return rows


def train_rows(directory: Path) -> list[tuple]:
    rows = []
    for part, model in TRAIN_PARTS:
        problem = failure(directory, part)
        if problem:
            rows.append(("training step", model, "", problem, ""))
            continue
        data = json.loads((directory / f"{part}.json").read_text())
        check = f"training step, batch {data['batch']} x {data['width']} tokens"
        first = data["rows"][0]["seconds_per_step"]
        for i, r in enumerate(data["rows"]):
            notes = f"median of {data['steps']} steps after {data['warmup']}"
            if i:
                notes += f"; {r['seconds_per_step'] / first:.2f}x {VARIANTS.get(data['rows'][0]['variant'])}"
            precision = VARIANTS.get(r["variant"], r["variant"])
            rows.append((check, model, precision, f"{r['seconds_per_step']:.4f} s/step", notes))
    return rows


def faiss_rows(directory: Path) -> list[tuple]:
    problem = failure(directory, FAISS_PART)
    if problem:
        return [("FAISS flat inner product", "faiss GPU vs CPU", "fp32", problem, "")]
    r = json.loads((directory / f"{FAISS_PART}.json").read_text())
    check = f"FAISS flat inner product, {r['vectors']:,} x {r['dim']}, {r['queries']:,} queries, k={r['k']}"
    cpu = f"CPU {r['cpu_seconds']:.3f} s ({r['cpu_threads']} threads)"
    if r["gpu_seconds"] is None:
        return [(check, "faiss CPU only", "fp32", cpu, "no GPU timed (--cpu-only)")]
    result = f"GPU {r['gpu_seconds']:.4f} s, {cpu}"
    notes = f"GPU {r['speedup']:.1f}x the CPU; top-{r['k']} overlap {r['top_k_overlap_pct']:.2f}%; faiss {r['faiss']}"
    return [(check, "faiss GPU vs CPU", "fp32", result, notes)]


def table(directory: Path) -> str:
    env_file = directory / "environment.json"
    header = describe(json.loads(env_file.read_text())) if env_file.exists() else "machine: not recorded"
    lines = [
        "## GPU check (benchmarks/gpu_check.sh)",
        "",
        f"{header}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| check | system | precision | result | notes |",
        "|---|---|---|---|---|",
    ]
    for row in reader_rows(directory) + train_rows(directory) + faiss_rows(directory):
        lines.append("| " + " | ".join(cell(x) for x in row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("environment", help="print the GPU name and versions, and save them")
    env.add_argument("--device", default="cuda")
    env.add_argument("--json", type=Path, required=True)
    tab = commands.add_parser("table", help="print the markdown table of the parts' results")
    tab.add_argument("--dir", type=Path, required=True)
    tab.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.command == "environment":
        info = environment(args.device)
        args.json.write_text(json.dumps(info, indent=1) + "\n")
        print(describe(info))
    else:
        text = table(args.dir)
        print(text, end="")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)


if __name__ == "__main__":
    main()
