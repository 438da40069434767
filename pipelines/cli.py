"""corpusqa: extractive question answering over your documents. Index files, ask them questions, serve
them to people (a search page) or programs (an HTTP API), and evaluate or fine-tune the reader."""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import warnings
from pathlib import Path

# Haystack's usage telemetry phones home on each pipeline run and reads this when it is imported: a local
# tool should not call out (set HAYSTACK_TELEMETRY_ENABLED=True to opt back in).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

# Only light modules here: torch, transformers, Haystack, Streamlit and FastAPI load inside the commands
# that need them, so `corpusqa --help` and every command's --help answer at once.
from corpusqa.models import DEFAULT_READER  # noqa: E402
from corpusqa.pipelines.flag_bounds import check_bounds  # noqa: E402
from corpusqa.pipelines.terminal import safe_stdout, stripped  # noqa: E402
from corpusqa.pipelines.option_flags import add_flags, given  # noqa: E402
from corpusqa.reader.options import PRECISIONS, ReadOptions  # noqa: E402
from corpusqa.server.settings import DEFAULT_PORT as SERVE_PORT  # noqa: E402
from corpusqa.ui.launch import DEFAULT_MAX_MB, DEFAULT_PORT, LOCALHOST  # noqa: E402

_STORE_HELP = "store folder, or es://HOST:PORT/INDEX (ess:// for TLS) (default: $CORPUSQA_STORE or ./.corpusqa)"
#: Where the search page and the server keep uploads and feedback for a store without a folder (Elasticsearch).
_DATA_DIR = ".corpusqa-data"
_DATA_HELP = f"folder for uploads and feedback (default: the store folder; ./{_DATA_DIR} for an Elasticsearch store)"
_READER_TITLE = "reader options"
#: TrainConfig fields offered as flags, with their types; the defaults stay in TrainConfig.
_TRAIN_FIELDS = {
    "max_seq_length": int, "doc_stride": int, "max_question_length": int, "learning_rate": float,
    "batch_size": int, "gradient_accumulation": int, "epochs": int, "warmup_ratio": float,
    "weight_decay": float, "seed": int, "limit": int, "max_steps": int, "negatives": float, "device": str,
    "eval_file": Path, "eval_questions": int, "eval_every": int, "objective": str,
    "teacher": str, "distill_weight": float, "distill_temperature": float, "distill_softmax": str,
}


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    from corpusqa.server.client import ServerError

    try:
        check_bounds(args)
        with safe_stdout(json_output=_prints_json(args)):
            return args.handler(args)
    except (UsageError, ValueError, OSError, ServerError) as error:
        print(f"corpusqa {args.command}: error: {stripped(str(error))}", file=sys.stderr)
        return 2
    except Exception as error:
        refused = _refused_weights(error, args) or _store_problem(error, args)
        if refused is None:
            raise
        print(f"corpusqa {args.command}: error: {stripped(refused)}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpusqa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="index files and folders (incremental: unchanged files are skipped)")
    index.add_argument("paths", nargs="+", type=Path, help="files and folders, searched recursively")
    index.add_argument("--store", default=_default_store(), help=_STORE_HELP)
    index.add_argument("--prune", action="store_true", help="remove documents whose files are gone from these paths")
    index.add_argument("--no-embed", action="store_true", help="BM25 only: skip dense embeddings")
    index.add_argument(
        "--reread", action="store_true",
        help="read every file again, changed or not (after an upgrade that converts or splits files differently)",
    )
    _quiet_flag(index)
    index.add_argument(
        "--follow-symlinks", action="store_true", help="also read files that symlinks in the folders lead to outside them"
    )
    _limit_flags(index)
    index.set_defaults(handler=_index)
    _store_command(commands)

    ask = commands.add_parser("ask", help="ask the indexed corpus a question")
    ask.add_argument("question", nargs="?", help="the question (or --questions FILE)")
    ask.add_argument("--questions", type=Path, help="many questions: one per line, or JSONL with a 'question' field")
    ask.add_argument("--output", type=Path, help="with --questions: write JSONL here instead of stdout")
    ask.add_argument("--store", default=_default_store(), help=_STORE_HELP)
    ask.add_argument(
        "--retriever", choices=("bm25", "dense", "hybrid"),
        help="default: hybrid, or bm25 for a store without embeddings (with --server: the server's)",
    )
    ask.add_argument("--passages", type=int, help="passages to read (default: the pipeline YAML's)")
    ask.add_argument("--file-type", action="append", help="only passages of this file type (pdf, docx, html, md, txt)")
    ask.add_argument("--reranker", help="re-rank the retrieved passages with this cross-encoder (hub id or folder)")
    ask.add_argument("--json", action="store_true", help="print everything machine-readable, offsets included")
    ask.add_argument("--server", metavar="URL", help="ask a running `corpusqa serve` instead of loading models here")
    ask.add_argument("--token-file", type=Path, help="with --server: file holding its token (default: $CORPUSQA_TOKEN)")
    _dtype_flag(ask)
    add_flags(ask, ReadOptions, title=_READER_TITLE)
    ask.set_defaults(handler=_ask)

    stats = commands.add_parser("stats", help="what the store holds")
    stats.add_argument("--store", default=_default_store(), help=_STORE_HELP)
    stats.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    stats.set_defaults(handler=_stats)

    ui = commands.add_parser("ui", help="serve the search page for people (Streamlit), on this machine unless --host")
    _serving_flags(ui, DEFAULT_PORT)
    ui.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_MB, help="largest file people may upload")
    ui.add_argument("--export-feedback", type=Path, metavar="FILE", help="write feedback as SQuAD 2.0 JSON and exit")
    add_flags(ui, ReadOptions, title=_READER_TITLE)
    ui.set_defaults(handler=_ui)

    serve = commands.add_parser("serve", help="serve the HTTP API for programs (FastAPI), on this machine unless --host")
    _serving_flags(serve, SERVE_PORT)
    serve.add_argument("--retriever", choices=("bm25", "dense", "hybrid"), default="hybrid", help="for questions that name none (default: hybrid)")
    serve.add_argument("--reranker", help="re-rank the retrieved passages with this cross-encoder (hub id or folder)")
    serve.add_argument("--token-file", type=Path, help="file holding the bearer token clients must send (default: $CORPUSQA_TOKEN; none: no token)")
    serve.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_MB, help="most one upload request may carry")
    _dtype_flag(serve)
    serve.add_argument("--index-root", type=Path, action="append", default=[], help="a folder whose files clients may have indexed by path (repeatable; folders indexed before are allowed)")
    add_flags(serve, ReadOptions, title=_READER_TITLE)
    serve.set_defaults(handler=_serve)

    read = commands.add_parser("read", help="answer a question from a text with one reader model")
    read.add_argument("--model", default=DEFAULT_READER, help="hub id or folder of an extractive QA model (default: the shipped reader)")
    read.add_argument("--question", "-q", required=True, action="append", help="repeat for several questions")
    source = read.add_mutually_exclusive_group(required=True)
    source.add_argument("--context-file", type=Path, help="UTF-8 text file to read the answer from")
    source.add_argument("--context", help="the text itself")
    read.add_argument("--json", action="store_true", help="print answers as JSON")
    _model_flags(read)
    add_flags(read, ReadOptions, ReadOptions(), title=_READER_TITLE)
    read.set_defaults(handler=_read)

    evaluate = commands.add_parser("eval", help="evaluate on SQuAD-format data")
    kinds = evaluate.add_subparsers(dest="kind", required=True, metavar="KIND")
    squad = kinds.add_parser("squad", help="reader-only evaluation with the official SQuAD metric")
    squad.add_argument("--data", type=Path, required=True, help="SQuAD v1.1 or v2.0 JSON file")
    what = squad.add_mutually_exclusive_group()
    what.add_argument("--model", default=DEFAULT_READER, help="reader to evaluate (default: the shipped reader)")
    what.add_argument("--predictions", type=Path, help="score an existing predictions file instead")
    squad.add_argument("--na-probs", type=Path, help="with --predictions: the v2.0 na_probs file")
    squad.add_argument("--limit", type=int, help="only the first N questions")
    squad.add_argument("--output", type=Path, help="folder for predictions.json (and na_probs.json)")
    squad.add_argument(
        "--save-threshold", action="store_true", help="v2.0: store the best no-answer threshold with the model"
    )
    squad.add_argument("--json", action="store_true", help="print only the metrics, as one JSON object")
    _quiet_flag(squad)
    _model_flags(squad)
    add_flags(squad, ReadOptions, ReadOptions(), title=_READER_TITLE)
    squad.set_defaults(handler=_eval_squad)

    open_ = kinds.add_parser("open", help="open-domain: index SQuAD paragraphs, ask every question through the pipeline")
    open_.add_argument("--data", type=Path, required=True, help="SQuAD file whose questions are asked")
    open_.add_argument("--corpus", type=Path, action="append", default=[], help="more SQuAD files whose paragraphs join the corpus")
    open_.add_argument("--store", required=True, help="store folder for the corpus (reused if it holds it already)")
    open_.add_argument("--retriever", choices=("bm25", "dense", "hybrid"), action="append", help="default: all three")
    open_.add_argument("--passages", type=int, default=10, help="passages the reader reads per question")
    open_.add_argument("--limit", type=int, help="only the first N questions")
    open_.add_argument("--model", help="reader: hub id or folder (default: the pipelines')")
    open_.add_argument("--unanswerable", type=int, default=0, metavar="N",
                       help="also ask the first N questions without their article: the share declined")
    open_.add_argument("--json", action="store_true", help="print only the metrics, as one JSON object")
    _quiet_flag(open_)
    open_.set_defaults(handler=_eval_open)

    fit = commands.add_parser(
        "train", help="fine-tune an encoder as an extractive reader on SQuAD-format data (resumable)"
    )
    fit.add_argument("--train", type=Path, action="append",
                     help="SQuAD-format training JSON or groups file; repeat it to train on several together")
    fit.add_argument("--model", help="base encoder or QA model: hub id or folder")
    fit.add_argument("--output", type=Path, help="run folder: checkpoints, learning curve, then the fine-tuned model")
    fit.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run from its newest checkpoint")
    fit.add_argument("--time-budget", type=float, metavar="MINUTES", help="stop at a checkpoint after this long")
    fit.add_argument("--checkpoint-minutes", type=float, default=15.0, help="minutes between checkpoints (default 15)")
    fit.add_argument("--dev", type=Path, help="SQuAD-format file to evaluate the final model on")
    fit.add_argument("--dev-limit", type=int, help="evaluate on the first N dev questions only")
    for name, kind in _TRAIN_FIELDS.items():
        fit.add_argument(f"--{name.replace('_', '-')}", type=kind, help="default: the training configuration's")
    fit.set_defaults(handler=_train)

    mine = commands.add_parser(
        "mine-negatives", help="training groups for a corpus reader: questions with BM25 hard negatives"
    )
    mine.add_argument("--train", type=Path, required=True, help="SQuAD-format training JSON (its paragraphs are searched)")
    mine.add_argument("--output", type=Path, required=True, help="groups file to write (for train --objective shared)")
    mine.add_argument("--negatives", type=int, default=3, help="hard negatives per question (default 3)")
    mine.add_argument("--no-answer-share", type=float, default=0.25, help="share of questions without their gold paragraph")
    mine.add_argument("--questions", type=int, help="sample this many questions (default: all)")
    mine.add_argument("--seed", type=int, default=0)
    _quiet_flag(mine)
    mine.set_defaults(handler=_mine_negatives)

    soup = commands.add_parser(
        "average", help="average readers fine-tuned from one model (a model soup); with --held-out, only those that help"
    )
    soup.add_argument("readers", type=Path, nargs="+", metavar="READER", help="reader folders, two or more")
    soup.add_argument("--output", type=Path, required=True, help="folder for the averaged reader")
    soup.add_argument("--held-out", type=Path, metavar="FILE",
                      help="SQuAD-format questions (never the test set): a greedy soup keeps a reader only if the "
                      "mean's F1 on them does not fall")
    soup.add_argument("--half", action="store_true", help="write it in fp16, as the shipped reader is")
    _model_flags(soup)
    soup.set_defaults(handler=_average)

    tune = commands.add_parser(
        "tune", help="tune a reader's no-answer threshold and retrieval weight over a corpus, per retriever"
    )
    tune.add_argument("--data", type=Path, required=True, help="SQuAD-format training file: questions and corpus")
    tune.add_argument("--store", required=True, help="store folder for its paragraphs (reused if it holds them)")
    tune.add_argument("--model", default=DEFAULT_READER, help="reader folder; the tuned values are stored in it")
    tune.add_argument("--retriever", choices=("bm25", "dense", "hybrid"), action="append", help="default: all three")
    tune.add_argument("--questions-from", type=Path, metavar="FILE",
                      help="SQuAD file whose questions are sampled (default --data's): articles of --data the reader "
                      "was not trained on (scripts/split_squad.py)")
    tune.add_argument("--questions", type=int, default=2000, help="questions sampled (default 2000)")
    tune.add_argument("--unanswerable-share", type=float, default=0.5, help="share asked without their article")
    tune.add_argument("--passages", type=int, default=10, help="passages the reader reads per question")
    tune.add_argument("--max-em-drop", type=float, default=2.0, help="EM points answerable questions may lose")
    tune.add_argument("--confidence", type=float, default=0.9,
                      help="how sure that new questions lose at most --max-em-drop (default 0.9; 0: the sample's own drop)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--dry-run", action="store_true", help="print the tables, store nothing")
    _quiet_flag(tune)
    tune.set_defaults(handler=_tune)
    return parser


def _serving_flags(parser: argparse.ArgumentParser, port: int) -> None:
    """The store, data folder, address and port of the search page and of the HTTP API."""
    parser.add_argument("--store", default=_default_store(), help=_STORE_HELP)
    parser.add_argument("--data-dir", type=Path, help=_DATA_HELP)
    parser.add_argument("--host", default=LOCALHOST, help=f"address to serve on (default: {LOCALHOST}; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=port, help=f"default: {port}")


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    _dtype_flag(parser)


def _dtype_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", *PRECISIONS),
        help="what the reader computes in: auto (bf16 on CUDA and AMX CPUs, int8 on CPUs with AVX-512 VNNI only, else fp32), float32, bfloat16, float16, "
        "or int8 (ONNX Runtime, CPU only; made on first use and cached)",
    )


def _quiet_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars (none either when stderr is not a terminal)")


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars for people: on a terminal, unless --quiet (or --json) says otherwise."""
    return not (args.quiet or getattr(args, "json", False)) and sys.stderr.isatty()


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for the limits per file of an index run (FileLimits, corpusqa.indexing.limits; docs/operating.md)."""
    group = parser.add_argument_group("limits per file (a file past one fails alone, saying which)")
    group.add_argument("--max-file-mb", type=float, help="largest file read, in MB")
    group.add_argument("--max-inflated-mb", type=float, help="most a DOCX (a zip) may inflate to, in MB")
    group.add_argument("--max-characters", type=int, help="most characters of text a file may convert to")
    group.add_argument("--max-passages", type=int, help="most passages a file's text may be split into")


def _store_command(commands: argparse._SubParsersAction) -> None:
    store = commands.add_parser("store", help="check a store, repair its indexes, or copy it to another store")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="integrity check of the database, passage counts, index folders against their manifests"
    )
    repair = actions.add_parser(
        "repair", help="rebuild both indexes from the database (an empty store where index folders lost theirs)"
    )
    for parser, handler in ((check, _store_check), (repair, _store_repair)):
        parser.add_argument("--store", default=_default_store(), help=_STORE_HELP)
        parser.set_defaults(handler=handler)
    copy = actions.add_parser(
        "copy", help="copy passages, vectors and file records to another store (resumable; nothing re-embedded)"
    )
    copy.add_argument("source", metavar="SRC", help="store to copy from: a folder or es://HOST:PORT/INDEX")
    copy.add_argument("target", metavar="DST", help="store to copy into (created if missing)")
    _quiet_flag(copy)
    copy.set_defaults(handler=_store_copy, store=None)


def _prints_json(args: argparse.Namespace) -> bool:
    """Whether the command prints JSON, whose control characters are escaped rather than stripped."""
    return bool(getattr(args, "json", False)) or getattr(args, "questions", None) is not None


def _refused_weights(error: BaseException, args: argparse.Namespace) -> str | None:
    """The line for model weights torch refused to unpickle (the pickle would run code), wherever in ``error``'s
    chain the refusal is; None for any other error."""
    found: BaseException | None = error
    while found is not None and not isinstance(found, pickle.UnpicklingError):
        found = found.__cause__ or found.__context__
    if found is None:
        return None
    model = getattr(args, "model", None) or getattr(args, "reranker", None) or "a model"
    lines = [line.strip() for line in str(found).splitlines()]
    why = next((line for line in lines if line.startswith("Unsupported")), "not plain tensors")
    return (f"{model}: refused to load its weights: they would run code, not only load tensors ({why}); "
            "use its safetensors weights")


def _store_problem(error: BaseException, args: argparse.Namespace) -> str | None:
    """The line for an error of the store in use (SQLite's, raised past the store's own checks, or one
    Haystack wrapped while a pipeline ran), naming the store; None for any other error or command."""
    if getattr(args, "store", None) is None:
        return None
    from corpusqa.pipelines.store_checks import store_problem

    return store_problem(args.store, error)


def _default_store() -> str:
    return os.environ.get("CORPUSQA_STORE", ".corpusqa")


def _read(args: argparse.Namespace) -> int:
    from haystack import Document

    from corpusqa.pipelines.answer_text import record_lines
    from corpusqa.pipelines.answers import answers_json
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
    results = read(reader, args.question, [passage], ReadOptions(**given(args, ReadOptions)))
    records = [answers_json(question, answers) for question, answers in zip(args.question, results)]
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    else:
        print("\n".join(line for record in records for line in record_lines(record)))
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from error


def _index(args: argparse.Namespace) -> int:
    from corpusqa.indexing.indexer import index_paths
    from corpusqa.indexing.store.location import open_store

    with open_store(args.store, create=True) as store:
        report = index_paths(
            args.paths, store, settings=_index_settings(args), embed=not args.no_embed, prune=args.prune,
            follow_symlinks=args.follow_symlinks, progress=_progress(args), reread=args.reread,
        )
    print(report.summary())
    return 0


def _ask(args: argparse.Namespace) -> int:
    from corpusqa.pipelines.answer_text import record_lines

    if (args.question is None) == (args.questions is None):
        raise UsageError("give one question, or --questions FILE")
    questions = [{"question": args.question}] if args.question is not None else _questions(args.questions)
    answer = _remote_asker(args) if args.server else _local_asker(args)
    batch = args.questions is not None
    sink = args.output.open("w", encoding="utf-8") if batch and args.output else sys.stdout
    try:
        for item in questions:
            record = {**item, **answer(item["question"])}
            if batch or args.json:
                print(json.dumps(record, ensure_ascii=False, indent=None if batch else 2), file=sink)
            else:
                print("\n".join(record_lines(record)))
    finally:
        if sink is not sys.stdout:
            sink.close()
    return 0


def _local_asker(args: argparse.Namespace):
    """Question -> the JSON record, from pipelines loaded in this process."""
    from dataclasses import replace

    from corpusqa.pipelines.answers import result_json
    from corpusqa.pipelines.query import ask, file_type_filter, load_query_pipeline

    _require_store(args.store)
    pipeline = load_query_pipeline(_retriever(args), args.store, {"dtype": args.dtype}, reranker=args.reranker)
    options = replace(pipeline.reader.options, **given(args, ReadOptions))
    filters = file_type_filter(args.file_type)
    return lambda question: result_json(ask(pipeline, question, args.passages, filters, options))


def _remote_asker(args: argparse.Namespace):
    """Question -> the JSON record, from the server at ``args.server`` (which has its own store and reranker)."""
    from corpusqa.server.client import call
    from corpusqa.server.settings import read_token

    if args.reranker:
        raise UsageError("--reranker is the server's choice: start `corpusqa serve` with it")
    token = read_token(args.token_file, os.environ)
    asked = {"retriever": args.retriever, "passages": args.passages, "file_types": args.file_type}
    settings = {key: value for key, value in asked.items() if value is not None} | given(args, ReadOptions)
    return lambda question: call(args.server, "/ask", {"question": question, **settings}, token)


def _questions(path: Path) -> list[dict]:
    """One question per line, or JSONL objects with a 'question' field (other fields are echoed back)."""
    items = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise UsageError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(item.get("question"), str) or not item["question"].strip():
                raise UsageError(f"{path}:{number}: a JSON line needs a non-empty 'question' field")
            items.append(item)
        else:
            items.append({"question": line})
    if not items:
        raise UsageError(f"{path} holds no questions")
    return items


def _require_store(store: str) -> None:
    """Fail before any model loads: on a location no store serves, or a store folder not made yet (a server
    store not made yet is refused when opened, without ``create``)."""
    from corpusqa.indexing.store.location import no_store, store_config

    folder = store_config(store)["init_parameters"].get("path")
    if folder is not None and not Path(folder).is_dir():
        raise UsageError(no_store(store))


def _retriever(args: argparse.Namespace) -> str:
    """The retriever asked for, hybrid when none; a store without embeddings answers with BM25, saying so, and
    refuses dense and hybrid retrieval asked for by name (``choose_retrievers``, as every face decides)."""
    from corpusqa.indexing.store.location import open_store
    from corpusqa.pipelines.store_checks import choose_retrievers

    with open_store(args.store, create=False) as store:
        choice = choose_retrievers(store, args.store, [args.retriever] if args.retriever else None)
    if choice.note is not None:
        print(f"corpusqa ask: {choice.note}", file=sys.stderr)
    return choice.retriever


def _index_settings(args: argparse.Namespace):
    """The default index settings, with the limits given as flags."""
    from dataclasses import replace

    from corpusqa.indexing.indexer import IndexSettings
    from corpusqa.indexing.limits import MB, FileLimits

    megabytes = {"max_file_bytes": args.max_file_mb, "max_inflated_bytes": args.max_inflated_mb}
    given = {name: round(value * MB) for name, value in megabytes.items() if value is not None}
    counts = {"max_characters": args.max_characters, "max_passages": args.max_passages}
    given |= {name: value for name, value in counts.items() if value is not None}
    return IndexSettings(limits=replace(FileLimits(), **given))


def _store_check(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.location import is_folder, open_store
    from corpusqa.indexing.store.maintenance import check_store

    if is_folder(args.store):
        findings = check_store(Path(args.store))  # reads the folder without opening it: it may be damaged
        repairable = [f for f in findings if f.subject not in ("database", "files")]
        repair = "rebuilds the indexes from the database"
    else:
        with open_store(args.store, create=False) as store:
            findings = store.check()
        repairable = [f for f in findings if f.subject == "files"]
        repair = "removes the files whose passages are not all stored, for the next index run to read again"
    for finding in findings:
        print(f"{'ok' if finding.ok else 'PROBLEM':>7}  {finding.subject}: {finding.text}")
    if any(not finding.ok for finding in repairable):
        print(f"`corpusqa store repair --store {args.store}` {repair}")
    return 0 if all(finding.ok for finding in findings) else 1


def _store_repair(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.location import is_folder, open_store
    from corpusqa.indexing.store.maintenance import repair_store

    if is_folder(args.store):
        done = repair_store(Path(args.store))
    else:
        with open_store(args.store, create=False) as store:
            done = store.repair()
    print("\n".join(done))
    return 0


def _store_copy(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.copy import copy_store
    from corpusqa.indexing.store.location import open_store, store_config

    if store_config(args.source) == store_config(args.target):
        raise UsageError(f"{args.source} and {args.target} are the same store")
    _require_store(args.source)
    with open_store(args.source, create=False) as source, open_store(args.target, create=True) as target:
        report = copy_store(source, target, progress=_progress(args))
    print(report.summary())
    return 0


def _data_dir(args: argparse.Namespace) -> Path | None:
    """``--data-dir``, else None (the store folder), or ``./.corpusqa-data`` for a store without a folder."""
    from corpusqa.indexing.store.location import is_folder

    return args.data_dir or (None if is_folder(args.store) else Path(_DATA_DIR))


def _stats(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.location import open_store
    from corpusqa.pipelines.readable import stats_lines

    _require_store(args.store)
    with open_store(args.store, create=False) as store:
        stats = store.stats()
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
    else:
        print("\n".join(stats_lines(args.store, stats)))
    return 0


def _ui(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.location import is_folder
    from corpusqa.ui.launch import UISettings, serve

    if args.max_upload_mb < 1:
        raise UsageError("--max-upload-mb must be at least 1")
    if args.export_feedback is not None:
        from corpusqa.ui.feedback import FeedbackStore

        _require_store(args.store)
        written = FeedbackStore.beside(_data_dir(args) or args.store).export(args.export_feedback)
        print(f"wrote {written} training examples to {args.export_feedback}")
        return 0
    if is_folder(args.store):
        store = Path(args.store)
    else:  # a server store: reach it now, so that a wrong address, credentials or index is one line, not a broken
        # page; the page does not create an index (`corpusqa index` does)
        from corpusqa.indexing.store.location import open_store

        open_store(args.store, create=False).close()
        store = args.store
    settings = UISettings(store, args.max_upload_mb, given(args, ReadOptions), _data_dir(args))
    return serve(settings, args.host, args.port)


def _serve(args: argparse.Namespace) -> int:
    from corpusqa.indexing.store.location import is_folder
    from corpusqa.server.settings import ServerSettings, read_token

    if args.max_upload_mb < 1:
        raise UsageError("--max-upload-mb must be at least 1")
    for root in args.index_root:
        if not root.is_dir():
            raise UsageError(f"--index-root {root}: no such folder")
    settings = ServerSettings(
        store=Path(args.store) if is_folder(args.store) else args.store,
        data_dir=_data_dir(args),
        retriever=args.retriever,
        reader={**given(args, ReadOptions), "dtype": args.dtype},
        reranker=args.reranker,
        max_upload_mb=args.max_upload_mb,
        index_roots=tuple(args.index_root),
        token=read_token(args.token_file, os.environ),
    )
    from corpusqa.server.app import serve

    return serve(settings, args.host, args.port)


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
        options = ReadOptions(**given(args, ReadOptions))
        metrics = evaluate_reader(
            reader, dataset, options, limit=args.limit, progress=_progress(args), output_dir=args.output
        )
        if args.save_threshold:
            if "best_f1_no_answer_threshold" not in metrics or not reader.name or not Path(reader.name).is_dir():
                raise UsageError("--save-threshold needs a SQuAD 2.0 file and a model folder")
            save_no_answer_threshold(Path(reader.name), metrics["best_f1_no_answer_threshold"])
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>28}: {value:.4f}" if isinstance(value, float) else f"{key:>28}: {value}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from corpusqa.reader import load_reader_model
    from corpusqa.reader.evaluation import evaluate_reader
    from corpusqa.reader.squad_metric import load_squad
    from corpusqa.reader.training import StopControl, TrainConfig, resume_config, train

    if args.resume is not None:
        if args.train or args.model or args.output:
            raise UsageError("--resume takes its settings from the run folder; drop --train, --model and --output")
        config = resume_config(args.resume)
    elif not (args.train and args.model and args.output):
        raise UsageError("a new run needs --train, --model and --output (or --resume RUN_DIR)")
    else:
        chosen = {name: getattr(args, name) for name in _TRAIN_FIELDS if getattr(args, name) is not None}
        files = args.train[0] if len(args.train) == 1 else [str(path) for path in args.train]
        config = TrainConfig(train_file=files, base_model=args.model, output_dir=args.output, **chosen)
    outcome = train(
        config,
        resume=args.resume is not None,
        checkpoint_minutes=args.checkpoint_minutes,
        stop=StopControl(args.time_budget),
    )
    if not outcome.finished:
        print(
            f"stopped ({outcome.stop_reason}) at step {outcome.global_step} of {outcome.total_steps}; "
            f"continue with: corpusqa train --resume {outcome.run_dir}"
        )
        return 0
    print(f"model saved to {outcome.run_dir}")
    if args.dev is not None:
        reader = load_reader_model(outcome.run_dir, device=config.device)
        metrics = evaluate_reader(reader, load_squad(args.dev), limit=args.dev_limit)
        (outcome.run_dir / "dev_metrics.json").write_text(json.dumps({"data": str(args.dev), **metrics}, indent=2) + "\n")
        print(json.dumps(metrics, indent=2))
    return 0


def _mine_negatives(args: argparse.Namespace) -> int:
    from corpusqa.pipelines.hard_negatives import describe, mine_groups
    from corpusqa.reader.squad_metric import load_squad
    from corpusqa.reader.training_data import save_groups

    groups, counts = mine_groups(
        load_squad(args.train), args.negatives, args.no_answer_share, args.questions, args.seed, _progress(args)
    )
    source = {"train": str(args.train), "retriever": "bm25", "seed": args.seed, **counts}
    save_groups(args.output, groups, source)
    print(f"wrote {describe(groups)} to {args.output}")
    return 0


def _average(args: argparse.Namespace) -> int:
    from corpusqa.reader import load_reader_model
    from corpusqa.reader.evaluation import evaluate_reader
    from corpusqa.reader.shipping import average_readers, export_half, greedy_soup
    from corpusqa.reader.squad_metric import load_squad

    if args.held_out is None:
        average_readers(args.readers, args.output)
        print(f"wrote the mean of {len(args.readers)} readers to {args.output}")
    else:
        questions = load_squad(args.held_out)

        def f1(folder: Path) -> float:
            reader = load_reader_model(str(folder), device=args.device, dtype=args.dtype)
            return evaluate_reader(reader, questions, progress=False)["f1"]

        steps = greedy_soup(args.readers, f1, args.output)
        print("| reader | F1 alone | F1 of the mean with it | kept |\n|---|---|---|---|")
        for step in steps:
            print(f"| {step.reader} | {step.alone:.2f} | {step.mean:.2f} | {'yes' if step.kept else 'no'} |")
        kept = sum(step.kept for step in steps)
        print(f"wrote the mean of {kept} of {len(steps)} readers to {args.output} (F1 on {args.held_out})")
    if args.half:
        export_half(args.output, args.output)
    return 0


def _corpus_store(args: argparse.Namespace, datasets: list) -> int:
    """Index the datasets' paragraphs into ``args.store`` unless it holds them already; their count."""
    from corpusqa.indexing.store.location import open_store
    from corpusqa.pipelines.open_eval import index_passages, squad_passages

    passages = squad_passages(datasets)
    store = open_store(args.store, create=True)  # a writer: the corpus is indexed here when the store is empty
    try:
        held = store.count_documents()
        if held == 0:
            index_passages(store, passages, progress=_progress(args))
        elif held != len(passages):
            raise UsageError(f"{args.store} holds {held} passages, not this corpus's {len(passages)}: use another --store")
    finally:
        store.close()
    return len(passages)


def _tune(args: argparse.Namespace) -> int:
    from corpusqa.pipelines.corpus_tuning import collect_readings, sample_questions, sweep
    from corpusqa.pipelines.query import load_query_pipeline
    from corpusqa.reader.model import save_corpus_settings
    from corpusqa.reader.squad_metric import load_squad

    if not 0 <= args.unanswerable_share <= 1:
        raise UsageError(f"--unanswerable-share must lie in [0, 1], not {args.unanswerable_share}")
    if not 0 <= args.confidence < 1:
        raise UsageError(f"--confidence must lie in [0, 1), not {args.confidence}")
    dataset = load_squad(args.data)
    asked = load_squad(args.questions_from) if args.questions_from else dataset
    missing = {e.title for e in asked.examples} - {e.title for e in dataset.examples}
    if missing:
        raise UsageError(f"{args.questions_from}: {len(missing)} of its articles are not in {args.data} (for example "
                         f"{sorted(missing)[0]!r}), so the corpus could not answer their questions")
    _corpus_store(args, [dataset])
    examples = sample_questions(asked, args.questions, args.seed)
    unanswerable = round(args.unanswerable_share * len(examples))
    for retriever in args.retriever or ["bm25", "dense", "hybrid"]:
        pipeline = load_query_pipeline(retriever, args.store, {"model": args.model})
        readings = collect_readings(pipeline, examples, unanswerable, args.passages, _progress(args))
        result = sweep(readings, args.max_em_drop, args.confidence)
        print(f"\n{retriever}: retrieval weight (EM on {result.evidence['answerable']} answerable, never abstaining)")
        print("| weight | EM |\n|---|---|")
        for weight, em in result.weights:
            print(f"| {weight:.4g} | {em:.2f} |")
        print(f"\n{retriever}: no-answer threshold at weight {result.settings.retrieval_weight:.4g}")
        print(f"| threshold | answerable EM | EM drop, {args.confidence:.0%} bound | unanswerable declined |\n|---|---|---|---|")
        for threshold, em, declined, bound in result.thresholds:
            mark = " (chosen)" if threshold == result.settings.no_answer_threshold else ""
            print(f"| {threshold:.3f}{mark} | {em:.2f} | {bound:.2f} | {declined:.1f}% |")
        folder = Path(pipeline.reader.loaded.name)
        if not args.dry_run:
            if not folder.is_dir():
                raise UsageError(f"{args.model} is not a local folder: nothing to store the tuned values in")
            evidence = {**result.evidence, "data": str(args.data), "questions": len(examples), "seed": args.seed,
                        "passages": args.passages, "questions_from": str(args.questions_from or args.data)}
            save_corpus_settings(folder, retriever, result.settings, evidence)
            print(f"stored in {folder}")
    return 0


def _eval_open(args: argparse.Namespace) -> int:
    from corpusqa.pipelines.open_eval import evaluate_open
    from corpusqa.reader.squad_metric import load_squad

    questions = load_squad(args.data)
    passages = _corpus_store(args, [questions] + [load_squad(path) for path in args.corpus])
    examples = questions.examples[: args.limit] if args.limit else questions.examples
    results = {"passages": passages, "questions": len(examples)}
    retrievers = _evaluated_retrievers(args)
    reader = {"model": args.model} if args.model else None
    results.update(evaluate_open(examples, retrievers, args.store, args.passages, reader, progress=_progress(args),
                                 unanswerable=args.unanswerable))
    print(json.dumps(results, indent=None if args.json else 2))
    return 0


def _evaluated_retrievers(args: argparse.Namespace) -> list[str]:
    """The retrievers asked for, all three when none; on a store without embeddings only BM25, saying so, and
    dense and hybrid asked for by name refused (``choose_retrievers``, as every face decides)."""
    from corpusqa.indexing.store.location import open_store
    from corpusqa.pipelines.query import RETRIEVERS
    from corpusqa.pipelines.store_checks import choose_retrievers

    with open_store(args.store, create=False) as store:
        choice = choose_retrievers(store, args.store, args.retriever, default=RETRIEVERS)
    if choice.reason is not None:
        print(f"corpusqa eval open: {choice.reason}: evaluating bm25 only", file=sys.stderr)
    return list(choice.retrievers)


def _quiet_libraries() -> None:
    """The CLI has its own output; libraries print warnings and errors only. The level is the handler's, as
    bm25s sets its own logger to DEBUG when imported (a line per index build). transformers 5 prints a
    progress bar and a load report per model; pypdf warns about the broken PDFs the index summary names.
    transformers is told through its environment, unless already loaded: importing it costs a second."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", handlers=[handler])
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # the Elasticsearch client logs each retry with a traceback; the store reports the outcome in one line
    logging.getLogger("elastic_transport").setLevel(logging.CRITICAL)
    # torch's note on a checkpoint's pickle protocol, printed before it refuses the weights (see _refused_weights)
    warnings.filterwarnings("ignore", message=r"Detected pickle protocol \d+ in the checkpoint")
    # deprecation notes on arguments Haystack's cross-encoder ranker still passes
    logging.getLogger("sentence_transformers.util.decorators").setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    else:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


if __name__ == "__main__":
    sys.exit(main())
