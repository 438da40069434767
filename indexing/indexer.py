"""Files -> passages -> store, incrementally: only new and changed files are converted, split and embedded.

A file's identity is its absolute path, its version the sha256 of its bytes: a file whose stored record has
the same hash is skipped. Files are written in batches (`IndexSettings.commit_files` files or
`commit_passages` passages), one store transaction each, so a killed run loses at most the batch in
flight. A file that cannot be converted is reported with the reason and left as the store had it.

`indexing_pipeline` wires the same components as a Haystack Pipeline (FileConverter -> PassageSplitter ->
embedder) for YAML and one-off use; `index_paths` runs them itself because the bookkeeping (hashes,
skipping, per-file failures, batched commits) sits between them, per file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haystack import Document, Pipeline
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder
from tqdm import tqdm

from corpusqa.indexing.convert import FileConverter, convert
from corpusqa.indexing.discovery import discover
from corpusqa.indexing.embedding import DEFAULT_EMBEDDER, embedding_precision, local_model_path, passage_precision
from corpusqa.indexing.errors import ConversionError
from corpusqa.indexing.limits import FileLimits, check_passages, read_file
from corpusqa.indexing.split import PassageSplitter
from corpusqa.indexing.store.contract import CorpusStore, FileRecord, RefusedFiles


@dataclass(frozen=True)
class IndexSettings:
    """How passages are cut and embedded, in one place for index_paths, the pipelines and the CLI.

    Passage size, measured on SQuAD dev-v1.1 (benchmarks/split_sizes.py; each article one file, 34,726
    gold answers; tok = all-MiniLM-L6-v2 word pieces; bm25@k over all 48 articles' passages):

    | words | overlap | passages | mean words | >256 tok | >317 tok | answers intact | bm25@1 | bm25@5 |
    |---:|---:|---:|---:|---:|---:|---:|---:|---:|
    | SQuAD paragraphs | - | 2,067 | 123 | 7.6% | 2.9% | 100.00% | 74.9% | 90.8% |
    | 60 | 0 / 20 | 6,051 / 6,405 | 42 / 59 | 0.0% | 0.0% | 99.50% / 99.99% | 66.1% / 65.0% | 83.8% / 85.1% |
    | 100 | 0 / 20 | 3,621 / 3,643 | 70 / 89 | 0.0% | 0.0% | 99.75% / 99.99% | 70.3% / 69.8% | 87.2% / 87.7% |
    | **150** | 0 / **20** | 2,471 / **2,477** | 103 / **121** | 0.3% / **0.6%** | 0.0% / **0.1%** | 99.96% / **99.99%** | 73.5% / **73.4%** | 89.9% / **89.9%** |
    | 200 | 0 / 20 | 1,841 / 1,848 | 138 / 156 | 7.2% / 16.6% | 0.7% / 1.1% | 100.00% / 99.99% | 74.0% / 73.9% | 90.8% / 91.0% |
    | 300 | 0 / 20 | 1,116 / 1,120 | 226 / 244 | 73.1% / 82.3% | 42.6% / 56.1% | 100.00% / 100.00% | 75.0% / 74.9% | 92.3% / 92.4% |

    150 words with 20 of overlap keeps 99.99% of answers whole and retrieves nearly as well as SQuAD's own
    paragraphs, while a passage still fits the embedder (all-MiniLM-L6-v2 truncates at 256 tokens: 0.6%
    do not; at 200 words 17% would lose their end) and one reader window (384 tokens with the question).
    The overlap matters little where passages end at sentences, as here, and guards answers in text cut
    mid-sentence (long sentences, tables, PDF lines).

    Passages are embedded without their title (`embed_title=False`): on the same data, all-MiniLM-L6-v2
    recall with the article title before each passage was no better (dense@1 57.0% -> 57.4%, dense@5
    83.1% -> 82.8%; 10,570 questions over 2,477 passages, `--dense`), and titles in the wild are often
    file names or a PDF producer's leftovers ("Microsoft Word - draft3.docx"). Set it for corpora whose
    titles name what each file is about, so passages that never name their subject can be found by it.
    """

    split_length: int = 150
    split_overlap: int = 20
    embedding_model: str = DEFAULT_EMBEDDER
    embed_title: bool = False
    embedding_batch_size: int = 32
    #: Files (or passages) per store transaction, also the embedder's batch: sentence-transformers sorts each
    #: call's passages by length; indexing 1,212 SQuAD paragraph files took 24.9 s at 256, 30.2 s at 32.
    commit_files: int = 256
    commit_passages: int = 2000
    #: What one file may take (size, inflated size, characters, passages); past a limit it fails alone.
    limits: FileLimits = FileLimits()

    def splitter(self) -> PassageSplitter:
        return PassageSplitter(split_length=self.split_length, split_overlap=self.split_overlap)

    def embedder(self) -> SentenceTransformersDocumentEmbedder:
        """Any sentence-transformers model name or folder; the default maps to the copy installed offline.
        No progress bar of its own: index_paths counts passages across batches."""
        return SentenceTransformersDocumentEmbedder(
            model=local_model_path(self.embedding_model),
            batch_size=self.embedding_batch_size,
            normalize_embeddings=True,
            meta_fields_to_embed=["title"] if self.embed_title else None,
            progress_bar=False,
        )


@dataclass
class IndexReport:
    """What one indexing run did: counts of files, the failures with their reasons, the paths left out
    unread (special files, symlinks leading out, folders nested too deep) with theirs, passages written."""

    indexed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    removed: int = 0
    passages: int = 0
    seconds: float = 0.0
    #: What passages were embedded in (float32, bfloat16 or int8: ``passage_precision``); None: none were.
    embedding_precision: str | None = None

    def summary(self) -> str:
        lines = [
            f"Indexed {self.indexed} files ({self.passages} passages), skipped {self.skipped} unchanged, "
            f"removed {self.removed}, failed {len(self.failed)}, left out {len(self.left_out)}, in {self.seconds:.1f} s."
        ]
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failed]
        lines += [f"  left out: {path}: {reason}" for path, reason in self.left_out]
        return "\n".join(lines)


def indexing_pipeline(settings: IndexSettings = IndexSettings(), *, embed: bool = True) -> Pipeline:
    """files -> FileConverter -> PassageSplitter (-> embedder): run with {"converter": {"sources": [...]}};
    passages come out of the last component, failed files as converter.failures."""
    pipeline = Pipeline()
    pipeline.add_component("converter", FileConverter())
    pipeline.add_component("splitter", settings.splitter())
    pipeline.connect("converter.documents", "splitter.documents")
    if embed:
        pipeline.add_component("embedder", settings.embedder())
        pipeline.connect("splitter.documents", "embedder.documents")
    return pipeline


class _Progress:
    """Bars for people watching an index run (stderr): files gone through, with a rate and an ETA; passages
    converted; and passages embedded (or, without embeddings, written), out of those converted so far."""

    def __init__(self, files: int, embed: bool, enabled: bool) -> None:
        self.files = tqdm(total=files, desc="files", unit=" files", disable=not enabled)
        self.converted = tqdm(desc="converted", unit=" passages", disable=not enabled)
        self.done = tqdm(total=0, desc="embedded" if embed else "written", unit=" passages", disable=not enabled)

    def convert(self, passages: int) -> None:
        self.converted.update(passages)
        self.done.total = self.converted.n
        self.done.refresh()

    def close(self) -> None:
        for bar in (self.files, self.converted, self.done):
            bar.close()


class _BatchWriter:
    """Collects converted files, embeds their passages together and commits them as one store transaction. Files
    the store refuses (``RefusedFiles``: it left them as they were) go to the report as failed, not indexed."""

    #: Passages per embedder call: sentence-transformers sorts a call's passages by length, which large calls
    #: profit from (1,212 SQuAD paragraph files: 24.9 s in calls of 256 files, 30.2 s in calls of 32), and
    #: the embedded bar moves once per call.
    EMBED_CALL = 256

    def __init__(
        self, store: CorpusStore, embedder: Any | None, embed: bool, settings: IndexSettings, progress: _Progress,
        report: IndexReport,
    ) -> None:
        self.store, self.embedder, self.embed, self.settings, self.progress = store, embedder, embed, settings, progress
        self.report = report
        self.files: list[tuple[FileRecord, list[Document]]] = []
        self.pending_passages = 0

    def add(self, record: FileRecord, passages: list[Document]) -> int:
        """Queue a file; returns the passages committed by the flush it triggered, if any."""
        self.files.append((record, passages))
        self.pending_passages += len(passages)
        self.progress.convert(len(passages))
        full = len(self.files) >= self.settings.commit_files or self.pending_passages >= self.settings.commit_passages
        return self.flush() if full else 0

    def flush(self) -> int:
        if not self.files:
            return 0
        batch, self.files, written, self.pending_passages = self.files, [], self.pending_passages, 0
        if self.embed:
            embedded = iter(self._embedded([p for _, passages in batch for p in passages]))
            batch = [(record, [next(embedded) for _ in passages]) for record, passages in batch]
        try:
            self.store.replace_files(batch)
        except RefusedFiles as refused:  # one refused file never stops the run; the next run tries it again
            self.report.failed += refused.refused.items()
            lost = [passages for record, passages in batch if record.path in refused.refused]
            self.report.indexed -= len(lost)  # counted when queued
            written -= sum(map(len, lost))
        if not self.embed:
            self.progress.done.update(written)
        return written

    def _embedded(self, passages: list[Document]) -> list[Document]:
        found, embedder = [], self._embedder()
        if self.report.embedding_precision is None:  # decided (and the embedder set up) once per run
            self.report.embedding_precision = passage_precision(embedder)
        with embedding_precision(index_run=True, precision=self.report.embedding_precision):
            for begin in range(0, len(passages), self.EMBED_CALL):
                chunk = passages[begin : begin + self.EMBED_CALL]
                found += embedder.run(chunk)["documents"]
                self.progress.done.update(len(chunk))
        return found

    def _embedder(self) -> Any:
        # built on first use: a run that finds nothing new never loads a model
        if self.embedder is None:
            self.embedder = self.settings.embedder()
        return self.embedder


def index_paths(
    paths: Iterable[Path | str],
    store: CorpusStore,
    embedder: Any | None = None,
    *,
    settings: IndexSettings = IndexSettings(),
    embed: bool = True,
    prune: bool = False,
    progress: bool = True,
    follow_symlinks: bool = False,
    reread: bool = False,
) -> IndexReport:
    """Bring `store` up to date with the supported files under `paths` (files or folders).

    `store` is checked first (`verify`: a damaged store stops the run before it skips or adds anything),
    told `paths` (`record_roots`: the search UI serves original files only from under them), and its own
    folder, if it has one, is never indexed. `embedder` is a Haystack document embedder (default: `settings.embedder()`, all-MiniLM-L6-v2); `embed=False` stores
    passages without embeddings (BM25 only). `prune=True` removes the store's files that lie under `paths`
    but are no longer found there. `follow_symlinks=True` also reads files that symlinks found in the folders
    lead to outside them (see corpusqa.indexing.discovery). `reread=True` converts and splits every file again,
    changed or not, replacing its passages (after an upgrade that reads files differently); a file that fails
    keeps the passages it had.
    """
    started = time.perf_counter()
    report = IndexReport()
    roots = [os.path.abspath(path) for path in paths]
    store_folder = store.folder
    store.verify()
    found = discover(map(Path, roots), exclude=[Path(store_folder)] if store_folder else [],
                     follow_symlinks=follow_symlinks)  # fmt: skip
    files, report.left_out = found.files, found.left_out
    store.record_roots(roots)
    if prune:
        report.removed = _prune(store, roots, {str(path) for path in files}, store_folder)
    splitter = settings.splitter()
    bars = _Progress(len(files), embed, enabled=progress)
    with store.bulk(), contextlib.closing(bars):
        writer = _BatchWriter(store, embedder, embed, settings, bars, report)
        for path in files:
            known = None if reread else store.file_record(str(path))
            try:
                prepared = _prepare(path, known, splitter, settings.limits)
            except ConversionError as error:
                report.failed.append((str(path), error.reason))
            except Exception as error:  # one bad file never stops the run
                report.failed.append((str(path), f"{type(error).__name__}: {error}"))
            else:
                if prepared is None:
                    report.skipped += 1
                else:
                    report.passages += writer.add(*prepared)
                    report.indexed += 1
            bars.files.update()
        report.passages += writer.flush()
    report.seconds = time.perf_counter() - started
    return report


def _prepare(
    path: Path, known: FileRecord | None, splitter: PassageSplitter, limits: FileLimits
) -> tuple[FileRecord, list[Document]] | None:
    """The file's record and passages, or None when `known`, the store's record, is of this very version."""
    data = read_file(path, limits)
    content_hash = hashlib.sha256(data).hexdigest()
    if known is not None and known.content_hash == content_hash:
        return None
    passages = splitter.run(convert(path, limits, data))["documents"]
    check_passages(len(passages), path, limits)
    # the store fills in the record's passage count and time of indexing
    return FileRecord(str(path), content_hash, size=len(data), mtime=path.stat().st_mtime), passages


def _prune(store: CorpusStore, roots: Sequence[str], found: set[str], store_folder: Path | None) -> int:
    """Remove the store's files under `roots` that discovery no longer finds (deleted, renamed, now hidden).
    Files inside the store's own folder (the UI's uploads) are never found by discovery and never pruned."""

    def under(path: str, folders: Sequence[str]) -> bool:
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in folders)

    own = [os.path.abspath(store_folder)] if store_folder else []
    gone = [r.path for r in store.files() if under(r.path, roots) and not under(r.path, own) and r.path not in found]
    if gone:
        store.remove_files(gone)
    return len(gone)
