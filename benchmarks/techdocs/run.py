"""Answer quality on technical documentation: the techdocs questions asked of the techdocs corpus.

    python benchmarks/techdocs/run.py [--model M]... [--retriever hybrid]... [--passages 10]
                                      [--work runs/techdocs] [--json PATH] [--show-misses]

Builds the corpus (build_corpus.py) under ``--work`` unless it is there, indexes it into ``--work``/store
(only new and changed files; an existing store is reused), asks every question of questions.json through
the query pipeline of each retriever with each reader (``--model``, repeatable; default the shipped
reader) reading ``--passages`` passages, and prints one markdown table, a column per reader and retriever:

* EM / F1 of the top answer over the answerable questions (SQuAD normalisation; "no answer" scores 0);
* answerable questions answered exactly right, and how many of them the reader abstained on;
* abstention on the questions the corpus does not answer;
* recall@passages: answerable questions with a gold passage (a passage of the source file containing a gold
  answer) among the passages read;
* the misses by kind (see scoring.py).

Questions on a file the corpus lacks (a package not installed here) are left out, and the count is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# Haystack reads this when it is first imported: a benchmark run does not report to its usage telemetry.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import scoring  # noqa: E402

QUESTIONS = Path(__file__).parent / "questions.json"
SHIPPED = "models/minilm-squad"


def prepare(work: Path) -> Path:
    """The corpus built and indexed under ``work``; returns the store folder."""
    corpus, store_folder = work / "corpus", work / "store"
    if not corpus.is_dir():
        import build_corpus

        build_corpus.build(corpus)
    from corpusqa.indexing.indexer import index_paths
    from corpusqa.indexing.store.location import open_store

    with open_store(store_folder) as store:
        report = index_paths([corpus], store, prune=True, progress=False)
    print(report.summary(), file=sys.stderr)
    return store_folder


def load_questions(corpus: Path) -> tuple[list[dict], int]:
    """The questions whose source file is in the corpus (all unanswerable ones), and how many were left out."""
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    kept = [q for q in questions if q["source"] is None or (corpus / q["source"]).is_file()]
    return kept, len(questions) - len(kept)


def ask_all(
    store: Path, questions: list[dict], models: list[str], retrievers: list[str], passages: int, gold: bool = False
) -> dict:
    """Per (model, retriever) column name, one record per question: the top answer and what was read; with
    ``gold``, also whether the top answer is right when the reader reads the question's gold passages alone."""
    from corpusqa.pipelines.query import load_query_pipeline, retrieve

    gold_passages = _gold_passages(store, questions) if gold else {}
    columns: dict[str, list[dict]] = {}
    for retriever in retrievers:
        pipelines = {model: load_query_pipeline(retriever, store, {"model": model}) for model in models}
        started = time.perf_counter()
        read = [retrieve(pipelines[models[0]], q["question"], passages) for q in questions]
        print(f"{retriever}: retrieved in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        for model, pipeline in pipelines.items():
            started = time.perf_counter()
            records = []
            for question, documents in zip(questions, read):
                answers = pipeline.reader.run(question["question"], documents)["answers"]
                records.append(_record(question, answers, documents))
                if question["id"] in gold_passages:
                    alone = pipeline.reader.run(question["question"], gold_passages[question["id"]])["answers"]
                    said = alone[0].data if alone and alone[0].data is not None else ""
                    records[-1]["gold_alone"] = {"prediction": said, "em": scoring.best_em_f1(said, question["answers"])[0]}
            print(f"{model} ({retriever}): read in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            columns[f"{model} ({retriever})"] = records
    return columns


def _gold_passages(store: Path, questions: list[dict]) -> dict[int, list]:
    """Per answerable question, the passages of its source file that hold a gold answer."""
    from corpusqa.indexing.store.location import open_store

    with open_store(store) as opened:
        passages = opened.filter_documents()
    return {
        q["id"]: [p for p in passages if scoring.is_gold_passage(p, q["source"], q["answers"])]
        for q in questions
        if q["answers"]
    }


def _record(question: dict, answers: list, documents: list) -> dict:
    golds, source = question["answers"], question["source"]
    top = answers[0] if answers else None
    answered = top is not None and top.data is not None
    shown = [a.data for a in answers if a.data is not None]
    record = {
        "id": question["id"],
        "question": question["question"],
        "kind": question["kind"],
        "source": source,
        "answers": golds,
        "prediction": top.data if answered else None,
        "score": top.score if top is not None else None,
        "file": top.document.meta.get("file_name") if answered else None,
        "context": top.context if answered else None,
        "gold_read": bool(golds) and any(scoring.is_gold_passage(d, source, golds) for d in documents),
        "shown": shown,
    }
    if golds:
        record["em"], record["f1"] = scoring.best_em_f1(record["prediction"] or "", golds)
        if not record["em"]:
            span = (top.document_offset.start, top.document_offset.end) if answered else None
            record["miss"] = scoring.miss_category(
                record["prediction"], span, top.document if answered else None, documents, source, golds
            )
    return record


def summarise(records: list[dict]) -> dict:
    answerable = [r for r in records if r["answers"]]
    unanswerable = [r for r in records if not r["answers"]]
    misses = Counter(r["miss"] for r in answerable if "miss" in r)
    top = [r["prediction"] for r in records if r["prediction"] is not None]
    shown = [text for r in records for text in r["shown"]]
    n = max(len(answerable), 1)
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "em": 100 * sum(r["em"] for r in answerable) / n,
        "f1": 100 * sum(r["f1"] for r in answerable) / n,
        "correct": sum(r["em"] for r in answerable),
        "correct_table": sum(r["em"] for r in answerable if r["kind"] == "table"),
        "table": sum(r["kind"] == "table" for r in answerable),
        "abstained_answerable": sum(r["prediction"] is None for r in answerable),
        "abstained_unanswerable": sum(r["prediction"] is None for r in unanswerable),
        "recall": 100 * sum(r["gold_read"] for r in answerable) / n,
        "gold_alone": [r["gold_alone"]["em"] for r in answerable if "gold_alone" in r],
        "gold_alone_table": sum(r["gold_alone"]["em"] for r in answerable if "gold_alone" in r and r["kind"] == "table"),
        "answered": len(top),
        "edge_debris": sum(map(scoring.has_edge_debris, top)),
        "crossing": sum(map(scoring.crosses_cells, top)),
        "shown": len(shown),
        "shown_edge_debris": sum(map(scoring.has_edge_debris, shown)),
        "shown_crossing": sum(map(scoring.crosses_cells, shown)),
        "misses": {category: misses.get(category, 0) for category in scoring.CATEGORIES},
    }


def table(summaries: dict[str, dict], passages: int) -> str:
    names = list(summaries)
    alone = [
        ("top-1 EM reading the gold passages alone", lambda s: f"{100 * sum(s['gold_alone']) / max(len(s['gold_alone']), 1):.1f}"),
        ("  right in a table, gold passages alone", lambda s: f"{s['gold_alone_table']} / {s['table']}"),
    ]
    rows = [
        ("top-1 EM (answerable)", lambda s: f"{s['em']:.1f}"),
        ("top-1 F1 (answerable)", lambda s: f"{s['f1']:.1f}"),
        ("answerable answered right", lambda s: f"{s['correct']} / {s['answerable']}"),
        ("  of them in a table", lambda s: f"{s['correct_table']} / {s['table']}"),
        ("answerable abstained on", lambda s: f"{s['abstained_answerable']} / {s['answerable']}"),
        ("unanswerable abstained on", lambda s: f"{s['abstained_unanswerable']} / {s['unanswerable']}"),
        (f"recall@{passages} (gold passage read)", lambda s: f"{s['recall']:.1f}%"),
        *(alone if any(s["gold_alone"] for s in summaries.values()) else []),
        ("top answers with debris at an edge", lambda s: f"{s['edge_debris']} / {s['answered']}"),
        ("top answers running over table cells", lambda s: f"{s['crossing']} / {s['answered']}"),
        ("all answers shown with debris at an edge", lambda s: f"{s['shown_edge_debris']} / {s['shown']}"),
        ("all answers shown running over table cells", lambda s: f"{s['shown_crossing']} / {s['shown']}"),
        ("misses", lambda s: f"{s['answerable'] - s['correct']}"),
        *[(f"  {category}", lambda s, c=category: f"{s['misses'][c]}") for category in scoring.CATEGORIES],
    ]
    lines = ["| | " + " | ".join(f"`{name}`" for name in names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cell(summaries[n]) for n in names) + " |" for label, cell in rows]
    return "\n".join(lines)


def show_misses(columns: dict[str, list[dict]]) -> str:
    out = []
    for name, records in columns.items():
        out.append(f"\n### Misses of {name}\n")
        for r in records:
            wrong = ("miss" in r) or (not r["answers"] and r["prediction"] is not None)
            if wrong:
                kind = r.get("miss", "answered an unanswerable question")
                said = "(no answer)" if r["prediction"] is None else repr(r["prediction"])
                where = f" from {r['file']}" if r["file"] else ""
                gold = f" gold {r['answers'][0]!r} in {r['source']};" if r["answers"] else ""
                out.append(f"* {r['id']}. [{kind}] {r['question']}{gold} said {said}{where}")
    return "\n".join(out)


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    import os

    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help=f"reader folder or name, repeatable (default {SHIPPED})")
    parser.add_argument("--retriever", action="append", choices=("bm25", "dense", "hybrid"), help="repeatable (default hybrid)")
    parser.add_argument("--passages", type=int, default=10, help="passages the reader reads (default 10)")
    parser.add_argument("--work", type=Path, default=Path("runs/techdocs"), help="corpus and store folder")
    parser.add_argument("--json", type=Path, help="write summaries and every question's record here")
    parser.add_argument("--show-misses", action="store_true", help="list every miss under the table")
    parser.add_argument("--gold-passages", action="store_true",
                        help="also read each question's gold passages alone (the reader without retrieval's part)")
    args = parser.parse_args()
    models, retrievers = args.model or [SHIPPED], args.retriever or ["hybrid"]

    store = prepare(args.work)
    questions, left_out = load_questions(args.work / "corpus")
    columns = ask_all(store, questions, models, retrievers, args.passages, args.gold_passages)
    summaries = {name: summarise(records) for name, records in columns.items()}
    print(f"{len(questions)} questions ({left_out} left out: their file is not in this corpus), "
          f"{args.passages} passages read; {machine()}\n")  # fmt: skip
    print(table(summaries, args.passages))
    if args.show_misses:
        print(show_misses(columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"passages": args.passages, "left_out": left_out, "machine": machine(), "summaries": summaries,
                   "questions": columns}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
