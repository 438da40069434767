"""Copying a corpus from one store to another (`corpusqa store copy SRC DST`): passages with their vectors,
file records and roots, as they are: nothing is converted or embedded again.

The source is read once, grouped by file (``CorpusStore.passages``). Each file goes to the target with its
record through ``replace_files``, in batches, so a copy that stops keeps every batch it finished. A file the
target already holds in the same version (its record's hash, size, time and passage count) is skipped: run
again, a copy resumes where it stopped, and a finished copy copies nothing. Passages that belong to no
file record (written by `corpusqa eval open` or `tune`, say) are written by id, overwriting their copies.
The target's other files are left as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from haystack.dataclasses import Document
from haystack.document_stores.types import DuplicatePolicy
from tqdm.auto import tqdm

from .contract import CorpusStore, FileRecord

#: Passages read per batch from the source, and written per ``replace_files`` call (one transaction of the
#: embedded store; one group of bulk requests to Elasticsearch).
READ_BATCH, WRITE_BATCH = 500, 2000


@dataclass
class CopyReport:
    """What a copy did: ``files`` copied (``passages`` theirs), ``unchanged`` files the target held already,
    ``unfiled`` passages of no file written, in ``seconds``."""

    files: int = 0
    passages: int = 0
    unchanged: int = 0
    unfiled: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"Copied {self.files:,} files ({self.passages:,} passages) and {self.unfiled:,} passages of no file; "
                f"{self.unchanged:,} files were there already; in {self.seconds:.1f} s.")  # fmt: skip


def copy_store(source: CorpusStore, target: CorpusStore, progress: bool = False) -> CopyReport:
    """Copy ``source``'s files, passages and roots into ``target`` (see the module); ``progress``: a bar of
    the passages read, on stderr."""
    started = time.perf_counter()
    records = {record.path: record for record in source.files()}
    held = {record.path: record for record in target.files()}
    todo = {path for path, record in records.items() if not _same(record, held.get(path))}
    report = CopyReport(unchanged=len(records) - len(todo))
    writer = _Writer(target, records, report)
    bar = tqdm(total=source.count_documents(), desc="copied", unit=" passages", disable=not progress)
    with target.bulk(), bar:
        for batch in source.passages(READ_BATCH):
            unfiled = [passage for passage in batch if passage.meta.get("file_path") not in records]
            if unfiled:
                report.unfiled += target.write_documents(unfiled, policy=DuplicatePolicy.OVERWRITE)
            for passage in batch:
                if passage.meta.get("file_path") in todo:
                    writer.add(passage)
            bar.update(len(batch))
        for path in sorted(todo - writer.seen):  # files recorded with no passages (empty, say)
            writer.add_file(path, [])
        writer.flush()
    target.record_roots(source.roots())
    report.seconds = time.perf_counter() - started
    return report


class _Writer:
    """Collects one file's passages at a time (the source's passages come grouped by file), and writes
    whole files in batches of about ``WRITE_BATCH`` passages."""

    def __init__(self, target: CorpusStore, records: dict[str, FileRecord], report: CopyReport) -> None:
        self.target, self.records, self.report = target, records, report
        self.seen: set[str] = set()
        self.path: str | None = None
        self.current: list[Document] = []
        self.pending: list[tuple[FileRecord, list[Document]]] = []
        self.pending_passages = 0

    def add(self, passage: Document) -> None:
        path = passage.meta["file_path"]
        if path != self.path:
            if self.path is not None:
                self.add_file(self.path, self.current)
            self.path, self.current = path, []
            self.seen.add(path)
        self.current.append(passage)

    def add_file(self, path: str, passages: list[Document]) -> None:
        self.pending.append((self.records[path], passages))
        self.pending_passages += len(passages)
        if self.pending_passages >= WRITE_BATCH:
            self._write()

    def flush(self) -> None:
        if self.path is not None:
            self.add_file(self.path, self.current)
            self.path, self.current = None, []
        self._write()

    def _write(self) -> None:
        if self.pending:
            self.target.replace_files(self.pending)
            self.report.files += len(self.pending)
            self.report.passages += self.pending_passages
        self.pending, self.pending_passages = [], 0


def _same(record: FileRecord, held: FileRecord | None) -> bool:
    """Whether the target's record ``held`` is of the same version of the file as ``record``."""
    fields = ("content_hash", "size", "mtime", "passages")
    return held is not None and all(getattr(record, name) == getattr(held, name) for name in fields)
