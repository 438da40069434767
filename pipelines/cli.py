"""The `corpusqa` command: thin argument parsing over the rooms' functions; no logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from corpusqa.reader.core import ReadOptions
from corpusqa.reader.training import TrainConfig

_DEFAULTS = ReadOptions()
_TRAIN_DEFAULTS = TrainConfig(train_file="", base_model="", output_dir="")
#: TrainConfig fields offered as flags, with their types; the defaults stay in TrainConfig.
_TRAIN_FIELDS = {
    "max_seq_length": int, "doc_stride": int, "max_question_length": int, "learning_rate": float,
    "batch_size": int, "gradient_accumulation": int, "epochs": int, "warmup_ratio": float,
    "weight_decay": float, "seed": int, "limit": int, "max_steps": int, "negatives": float, "device": str,
}


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_transformers()
    try:
        return args.handler(args)
    except (UsageError, ValueError, OSError) as error:
        print(f"corpusqa {args.command}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpusqa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    read = commands.add_parser("read", help="answer a question from a text with one reader model")
    read.add_argument("--model", required=True, help="hub id or folder of an extractive QA model")
    read.add_argument("--question", "-q", required=True, action="append", help="repeat for several questions")
    source = read.add_mutually_exclusive_group(required=True)
    source.add_argument("--context-file", type=Path, help="UTF-8 text file to read the answer from")
    source.add_argument("--context", help="the text itself")
    _reader_options(read)
    read.add_argument("--json", action="store_true", help="print answers as JSON")
    read.set_defaults(handler=_read)

    evaluate = commands.add_parser("eval", help="evaluate on SQuAD-format data")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    squad = kinds.add_parser("squad", help="reader-only evaluation with the official SQuAD metric")
    squad.add_argument("--data", type=Path, required=True, help="SQuAD v1.1 or v2.0 JSON file")
    what = squad.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="reader to evaluate (hub id or folder)")
    what.add_argument("--predictions", type=Path, help="score an existing predictions file instead")
    squad.add_argument("--na-probs", type=Path, help="with --predictions: the v2.0 na_probs file")
    squad.add_argument("--limit", type=int, help="only the first N questions")
    squad.add_argument("--output", type=Path, help="folder for predictions.json (and na_probs.json)")
    squad.add_argument(
        "--save-threshold", action="store_true", help="v2.0: store the best no-answer threshold with the model"
    )
    squad.add_argument("--json", action="store_true", help="print only the metrics, as one JSON object")
    _reader_options(squad)
    squad.set_defaults(handler=_eval_squad)

    fit = commands.add_parser("train", help="fine-tune an encoder as an extractive reader on SQuAD-format data")
    fit.add_argument("--train", type=Path, required=True, help="SQuAD-format training JSON")
    fit.add_argument("--model", required=True, help="base encoder or QA model: hub id or folder")
    fit.add_argument("--output", type=Path, required=True, help="folder for the fine-tuned model")
    fit.add_argument("--dev", type=Path, help="SQuAD-format file to evaluate the final model on")
    fit.add_argument("--dev-limit", type=int, help="evaluate on the first N dev questions only")
    for name, field in _TRAIN_FIELDS.items():
        fit.add_argument(f"--{name.replace('_', '-')}", type=field, default=getattr(_TRAIN_DEFAULTS, name))
    fit.set_defaults(handler=_train)
    return parser


def _reader_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-k", type=int, default=_DEFAULTS.top_k)
    parser.add_argument("--max-answer-length", type=int, default=_DEFAULTS.max_answer_length)
    parser.add_argument("--max-seq-length", type=int, default=_DEFAULTS.max_seq_length)
    parser.add_argument("--doc-stride", type=int, default=_DEFAULTS.doc_stride)
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    parser.add_argument(
        "--no-answer-threshold",
        type=float,
        default=_DEFAULTS.no_answer_threshold,
        help="abstain when null_logit - best_logit exceeds this (default: the model's tuned value, else 0)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA and AMX CPUs), float32, bfloat16, float16")


def _options(args: argparse.Namespace) -> ReadOptions:
    return ReadOptions(
        top_k=args.top_k,
        max_answer_length=args.max_answer_length,
        max_seq_length=args.max_seq_length,
        doc_stride=args.doc_stride,
        batch_size=args.batch_size,
        no_answer_threshold=args.no_answer_threshold,
    )


def _read(args: argparse.Namespace) -> int:
    from haystack import Document

    from corpusqa.reader import load_reader_model, read

    if args.context_file is not None:
        text = _read_text(args.context_file)
        name = str(args.context_file)
    else:
        text, name = args.context, "--context"
    if not text.strip():
        raise UsageError(f"{name} is empty: there is nothing to read an answer from")
    reader = load_reader_model(args.model, device=args.device, dtype=args.dtype)
    passage = Document(content=text, meta={"file_path": name})
    results = read(reader, args.question, [passage], _options(args))
    if args.json:
        print(json.dumps([[_answer_json(a) for a in answers] for answers in results], ensure_ascii=False, indent=2))
        return 0
    for question, answers in zip(args.question, results):
        print(f"Q: {question}")
        for rank, answer in enumerate(answers, 1):
            print(f"  {rank}. {answer.score:6.1%}  {_marked(answer)}")
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from error


def _answer_json(answer) -> dict:
    if answer.data is None:
        return {"answer": None, "score": answer.score}
    return {
        "answer": answer.data,
        "score": answer.score,
        "start": answer.document_offset.start,
        "end": answer.document_offset.end,
        "context": answer.context,
        "context_start": answer.context_offset.start,
        "context_end": answer.context_offset.end,
        "document_id": answer.document.id,
        "meta": answer.document.meta,
    }


def _marked(answer) -> str:
    """The answer inside its context snippet, marked with »«; the no-answer said plainly."""
    if answer.data is None:
        return "(no answer: the reader abstains)"
    context, span = answer.context.replace("\n", " "), answer.context_offset
    return f"…{context[: span.start]}»{context[span.start : span.end]}«{context[span.end :]}…"


def _eval_squad(args: argparse.Namespace) -> int:
    from corpusqa.reader import load_reader_model
    from corpusqa.reader.evaluation import evaluate_reader
    from corpusqa.reader.model import save_no_answer_threshold
    from corpusqa.reader.squad_metric import evaluate_files, load_squad

    if args.predictions is not None:
        metrics = evaluate_files(args.data, args.predictions, args.na_probs)
    else:
        dataset = load_squad(args.data)
        reader = load_reader_model(args.model, device=args.device, dtype=args.dtype)
        metrics = evaluate_reader(
            reader, dataset, _options(args), limit=args.limit, progress=not args.json, output_dir=args.output
        )
        if args.save_threshold:
            if "best_f1_no_answer_threshold" not in metrics or not Path(args.model).is_dir():
                raise UsageError("--save-threshold needs a SQuAD 2.0 file and a model folder")
            save_no_answer_threshold(Path(args.model), metrics["best_f1_no_answer_threshold"])
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>28}: {value:.4f}" if isinstance(value, float) else f"{key:>28}: {value}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from corpusqa.reader import load_reader_model
    from corpusqa.reader.evaluation import evaluate_reader
    from corpusqa.reader.squad_metric import load_squad
    from corpusqa.reader.training import train

    config = replace(
        _TRAIN_DEFAULTS,
        train_file=args.train,
        base_model=args.model,
        output_dir=args.output,
        **{name: getattr(args, name) for name in _TRAIN_FIELDS},
    )
    output = train(config)
    print(f"model saved to {output}")
    if args.dev is not None:
        metrics = evaluate_reader(load_reader_model(output, device=args.device), load_squad(args.dev), limit=args.dev_limit)
        (output / "dev_metrics.json").write_text(json.dumps({"data": str(args.dev), **metrics}, indent=2) + "\n")
        print(json.dumps(metrics, indent=2))
    return 0


def _quiet_transformers() -> None:
    """transformers 5 prints a progress bar and a load report per model; the CLI has its own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
