"""Store scaling: how the embedded store's query latency, write time, disk and memory grow with the corpus.

One EmbeddedDocumentStore grows through the sizes (default 20k, 100k, 300k, 1M synthetic passages),
written as ``corpusqa index`` writes: ``write_documents`` per ``--batch`` passages inside the store's bulk
mode (each batch committed, the indexes brought up to date once on leaving it). At each size a fresh
process opens it and times ``store.bm25(question, 10)`` and ``store.dense(embedding, 10)`` one call at a
time, and retrieval through the shipped hybrid query pipeline; another table row is printed as each size
finishes (how long it all takes: "Cost of a run" below).

    nice -n 19 python benchmarks/store_scaling.py --sizes 2000,20000 --queries 100 --anchors 300  # minutes
    python benchmarks/store_scaling.py [--sizes 20000,100000,300000,1000000] [--queries 200] [--batch 2000]
        [--anchors 5000] [--squad PATH] [--out DIR] [--json FILE]

Columns, per size N:

* write s: seconds the store took to grow from 0 to N passages: the commits of ``--batch`` passages
  (default ``IndexSettings().commit_passages``, the largest commit ``corpusqa index`` makes; with small
  files it commits 32 files at a time, more often), leaving bulk mode (the indexes updated: ``indexes_s``
  in the JSON), and the last commit. Making the synthetic passages is not counted, nor is embedding,
  which a real run adds.
* commit s: the last commit: one file's 20 passages written on their own after the bulk, which is what
  re-indexing one changed file costs at that size (outside bulk mode a commit brings both indexes up to
  date in place: BM25's delta, HNSW's graph; see the store's docstring).
* disk MB: ``stats()["disk_bytes"]``, SQLite (with its WAL) plus the BM25 and dense index folders.
* load s: a fresh process's first ``bm25()`` and first ``dense()`` call, reading both indexes from disk.
* bm25 / dense ms, p50 / p95: one unfiltered call each for ``--queries`` questions, after the first; the
  passages returned are read from SQLite, as in every query.
* dense: the dense index kind, exact ``flat`` up to ``FLAT_LIMIT`` (50k) passages, ``hnsw`` above.
* recall@10: the share of the exact top 10 (brute force over the same normalised vectors) that
  ``dense()`` returns: 1 by construction for flat, the approximation's quality for HNSW.
* hybrid ms, p50 / p95: retrieval as ``corpusqa ask --retriever hybrid`` does it before reading
  (pipelines/query_hybrid.yaml: MiniLM embeds the question on the CPU, BM25 and dense top 20, reciprocal
  rank fusion to 10): what the store's latency adds up to for a user. The retriever components themselves
  only call the store's methods (pipelines/retrieval.py); the pipeline adds the question's embedding and
  the fusion, which do not grow with the corpus.
* write / query RSS MB: peak resident memory of the process that grew the store to N (from the size
  before), and of the process that opened the store and queried it (before the hybrid pipeline loads
  its embedding model). Both include ~0.3 GB of imports (haystack brings in torch).

``--json`` also keeps every commit's passages and seconds (``commits``), and the disk bytes per part.

Synthetic passages. Each is 20-150 words (the length of a random SQuAD train paragraph, capped at
``IndexSettings().split_length``; mean ~108), drawn with replacement, each word with even odds from one
random real paragraph (its topic: a passage repeats its topical words, as real ones do) or from all
SQuAD train text (the global word distribution). On 18,896 passages, as many as SQuAD train has
paragraphs, the statistics that drive BM25's cost match the real paragraphs for 1,000 SQuAD questions:
the question's words occur in 28% of passages summed over the words (real: 29%), 24% of passages share a
word with the question (25%), 62 distinct non-stopword tokens per passage (64). Not representative: word
order is random (a bag-of-words index does not see it), and the vocabulary is SQuAD's, so where a real
corpus's vocabulary keeps growing with its size, this one's stops near 185k words; common words' posting
lists are then longer relative to the corpus than in real text, if anything a pessimistic bias for BM25.
Passages are grouped 20 to a synthetic file, with the meta the indexer writes (file_path, file_name,
file_type, title, source_id, split_id, split_idx_start) and sha256 ids.

Synthetic embeddings. No model runs over the passages (MiniLM embeds ~10-30 passages/s on this 2-core
CPU): ``--anchors`` random SQuAD train paragraphs are embedded with the indexing embedder
(``IndexSettings().embedder()``, all-MiniLM-L6-v2, normalised), and each passage's vector is a random
point around one anchor, spread towards its nearest anchors: ``anchor + sum_j g_j (neighbour_j - anchor)``
over its NEIGHBOURS nearest anchors, ``g_j`` normal with standard deviation SPREAD, then normalised. The
vectors stay in the neighbourhoods and directions real sentence embeddings occupy (uniformly random
vectors, with no neighbourhoods, are HNSW's worst case, see dense.py; isotropic noise adds directions real
embeddings do not use) and fill them more densely as N grows, as a larger real corpus does. Checked
against real data at the largest size embeddable here: 5,000 real SQuAD train paragraph embeddings
against 5,000 synthetic ones made from 1,000 other anchors, with 1,000 real question embeddings:

                                                        real   synthetic
    effective dimension (participation ratio)           117      119
    question's 1st / 10th nearest, cosine         0.52 / 0.37   0.43 / 0.34
    nearest neighbour within the set, cosine           0.58     0.76
    HNSW (M=32, efConstruction=80) recall@10,
      efSearch 10 / 16 (lower than the store's
      512, to make misses visible)               0.90 / 0.95   0.86 / 0.93

So the synthetic vectors are a little harder for HNSW than real ones (more near-duplicates, neighbours
closer together in rank): a pessimistic bias for recall@10, at the sizes that could be checked (and with
fewer anchors, more so: at 60k, recall@10 was 0.979 from 1,000 anchors, 0.994 from 5,000). Not
representative: at 1M, the structure below the scale of the anchors' neighbourhoods (200 vectors per
anchor with the default 5,000) is the synthesis's, not language's. Query vectors are the questions' own
MiniLM embeddings. Text and vector of a passage are drawn independently: nothing measured needs them to
agree.

Cost of a run, measured with the default sizes on this 2-core machine while it was quiet (2026-11-23):

* Time: 10 minutes. In bulk mode a commit only inserts rows (~50 us per passage); leaving it builds the
  BM25 index over every passage (~65 us per passage) and brings the dense index up to date (adding to
  HNSW ~0.15 ms per vector between 300k and a million; crossing FLAT_LIMIT rebuilds it from SQLite):
  180 s of the 330 s it took to grow to a million. A few times that while a training job shares the cores.
* Disk: ~6.25 kB per passage (SQLite 4.2 kB, BM25 0.5 kB, HNSW 1.8 kB): 6.25 GB at 1M, ~9 GB while new
  index folders are written beside the old ones.
* Memory: the writing process peaks at 6.3 GB at 1M: leaving bulk mode holds every passage's text and
  tokens for the BM25 build beside the dense index. The querying process grows by ~2.5 kB per passage
  (the HNSW graph with its vectors, the BM25 matrix): 2.6 GB at 1M.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SQUAD_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "squad" / "train-v1.1.json"
SIZES = "20000,100000,300000,1000000"
TOP_K = 10
FILE_PASSAGES = 20  # passages per synthetic file; the last file of each size is its own commit
TOPICAL = 0.5  # share of a passage's words drawn from its topic paragraph
NEIGHBOURS = 10  # anchors a synthetic vector is spread towards
SPREAD = 0.3  # standard deviation of the weight of each neighbour
SEED = 0


# --------------------------------------------------------------------------- synthetic corpus


@dataclass
class Corpus:
    """What synthetic passages and vectors are drawn from: SQuAD train's words and the anchors' embeddings
    (made by ``prepare``, so the measured processes never hold the SQuAD JSON)."""

    vocabulary: np.ndarray  # whitespace tokens
    tokens: np.ndarray  # every paragraph's tokens, as vocabulary positions, paragraph after paragraph
    starts: np.ndarray  # paragraph p's tokens are tokens[starts[p]:starts[p + 1]]
    titles: np.ndarray  # per paragraph: its article's title
    lengths: np.ndarray  # per paragraph: its words, capped at the splitter's split_length
    anchors: np.ndarray  # real passage embeddings, normalised
    neighbours: np.ndarray  # per anchor: its NEIGHBOURS nearest other anchors

    @classmethod
    def load(cls, work: Path) -> Corpus:
        with np.load(work / "corpus.npz") as saved:
            fields = {name: saved[name] for name in cls.__dataclass_fields__}
        fields["vocabulary"] = fields["vocabulary"].astype(object)  # Python strings: drawn and joined by reference
        return cls(**fields)

    def passages(self, begin: int, end: int) -> tuple[list, np.ndarray]:
        """Passages ``begin``..``end`` - 1 as Documents with embeddings, and those embeddings as an array."""
        from haystack import Document

        rng = np.random.default_rng([SEED, begin])
        texts, topics = self._texts(rng, end - begin)
        vectors = self._vectors(rng, end - begin)
        documents = []
        for position, text, topic, vector in zip(range(begin, end), texts, topics, vectors):
            file, split = divmod(position, FILE_PASSAGES)
            title = str(self.titles[topic])
            path = f"/corpus/{title}/{file}.txt"
            meta = {
                "file_path": path, "file_name": f"{file}.txt", "file_type": "txt", "title": title,
                "source_id": hashlib.sha256(path.encode()).hexdigest(), "split_id": split,
                "split_idx_start": split * 700,
            }
            documents.append(Document(id=passage_id(position), content=text, meta=meta, embedding=vector.tolist()))
        return documents, vectors

    def _texts(self, rng: np.random.Generator, count: int) -> tuple[list[str], np.ndarray]:
        """Texts and, per text, the paragraph it takes its topical words from."""
        topics = rng.integers(len(self.lengths), size=count)
        lengths = rng.choice(self.lengths, size=count)
        owner = np.repeat(np.arange(count), lengths)  # the text each drawn word goes to
        topic_start, topic_size = self.starts[topics][owner], np.diff(self.starts)[topics][owner]
        topical = rng.random(len(owner)) < TOPICAL
        drawn = np.where(
            topical,
            topic_start + (rng.random(len(owner)) * topic_size).astype(np.int64),
            rng.integers(len(self.tokens), size=len(owner)),
        )
        words = self.vocabulary[self.tokens[drawn]]
        return [" ".join(text) for text in np.split(words, np.cumsum(lengths)[:-1])], topics

    def _vectors(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Normalised points spread from random anchors towards their nearest anchors."""
        centres = rng.integers(len(self.anchors), size=count)
        weights = rng.normal(0.0, SPREAD, size=(count, NEIGHBOURS)).astype(np.float32)
        offsets = self.anchors[self.neighbours[centres]] - self.anchors[centres][:, None, :]
        vectors = self.anchors[centres] + np.einsum("nk,nkd->nd", weights, offsets)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def passage_id(position: int) -> str:
    return hashlib.sha256(f"synthetic passage {position}".encode()).hexdigest()


# --------------------------------------------------------------------------- phases, one process each


def prepare(squad: Path, work: Path, n_anchors: int, n_queries: int) -> None:
    """Save the corpus's words (corpus.npz, with the embedded anchors and their nearest neighbours) and the
    embedded questions (queries.npz)."""
    from haystack import Document

    from corpusqa.indexing.indexer import IndexSettings

    data = json.loads(squad.read_text(encoding="utf-8"))["data"]
    paragraphs = [(article["title"].replace("_", " "), p) for article in data for p in article["paragraphs"]]
    questions = [qa["question"] for _, p in paragraphs for qa in p["qas"]]
    positions: dict[str, int] = {}
    tokens, starts = [], [0]
    for _, paragraph in paragraphs:
        tokens.extend(positions.setdefault(word, len(positions)) for word in paragraph["context"].split())
        starts.append(len(tokens))

    rng = np.random.default_rng(SEED)
    picked = [paragraphs[i][1]["context"] for i in rng.choice(len(paragraphs), n_anchors, replace=False)]
    asked = [questions[i] for i in rng.choice(len(questions), n_queries, replace=False)]
    _quiet_transformers()
    settings = IndexSettings()
    embedder = settings.embedder()
    embedder.warm_up()
    embedded = embedder.run([Document(content=text) for text in picked + asked])["documents"]
    vectors = np.array([d.embedding for d in embedded], dtype=np.float32)
    anchors, queries = vectors[:n_anchors], vectors[n_anchors:]
    similarity = anchors @ anchors.T
    np.fill_diagonal(similarity, -np.inf)
    np.savez(
        work / "corpus.npz",
        vocabulary=np.array(list(positions)),
        tokens=np.array(tokens, dtype=np.int32),
        starts=np.array(starts, dtype=np.int64),
        titles=np.array([title for title, _ in paragraphs]),
        lengths=np.minimum(np.diff(starts), settings.split_length),
        anchors=anchors,
        neighbours=np.argsort(-similarity, axis=1)[:, :NEIGHBOURS],
    )
    np.savez(work / "queries.npz", questions=np.array(asked), vectors=queries)


class ExactTopK:
    """The exact top ``TOP_K`` passages per query over every vector written so far, kept in ``work``."""

    def __init__(self, work: Path, queries: np.ndarray):
        self.file, self.queries = work / "exact.npz", queries
        self.scores = np.full((len(queries), TOP_K), -np.inf, dtype=np.float32)
        self.positions = np.full((len(queries), TOP_K), -1, dtype=np.int64)
        if self.file.exists():
            with np.load(self.file) as saved:
                self.scores, self.positions = saved["scores"], saved["positions"]

    def add(self, vectors: np.ndarray, begin: int) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        written = np.broadcast_to(np.arange(begin, begin + len(vectors)), (len(scores), len(vectors)))
        positions = np.concatenate([self.positions, written], axis=1)
        best = np.argsort(-scores, axis=1)[:, :TOP_K]
        self.scores, self.positions = np.take_along_axis(scores, best, 1), np.take_along_axis(positions, best, 1)

    def save(self) -> None:
        np.savez(self.file, scores=self.scores, positions=self.positions)


def write(work: Path, size: int, batch: int) -> dict:
    """Grow the store to ``size`` passages as ``corpusqa index`` writes: in bulk mode, a commit per ``batch``
    and the indexes brought up to date once at the end; then one more file's passages, on their own."""
    from corpusqa.indexing.store import EmbeddedDocumentStore

    corpus = Corpus.load(work)
    with np.load(work / "queries.npz") as queries:
        exact = ExactTopK(work, queries["vectors"])
    commits, reported = [], time.monotonic()  # (passages after the commit, its seconds)
    with EmbeddedDocumentStore(work / "store") as store:
        begin = store.count_documents()
        with store.bulk():
            for start in range(begin, size - FILE_PASSAGES, batch):
                end = min(start + batch, size - FILE_PASSAGES)
                commits.append((end, _write(store, corpus, exact, start, end)))
                if time.monotonic() - reported > 60:
                    print(f"  {end:,} / {size:,} passages, last commit {commits[-1][1]:.1f} s", file=sys.stderr,
                          flush=True)
                    reported = time.monotonic()
            started = time.perf_counter()  # leaving bulk brings the indexes up to date
        indexes = time.perf_counter() - started
        commit = _write(store, corpus, exact, max(begin, size - FILE_PASSAGES), size)
    exact.save()
    return {"write_s": sum(s for _, s in commits) + indexes + commit, "commits": commits, "indexes_s": indexes,
            "commit_s": commit, "write_rss_mb": _peak_rss_mb()}


def _write(store, corpus: Corpus, exact: ExactTopK, begin: int, end: int) -> float:
    """Write passages ``begin``..``end`` - 1 in one call; returns its seconds."""
    documents, vectors = corpus.passages(begin, end)
    started = time.perf_counter()
    store.write_documents(documents)
    seconds = time.perf_counter() - started
    exact.add(vectors, begin)
    return seconds


def query(work: Path) -> dict:
    """Open the store in this fresh process and time its retrieval methods, then the hybrid pipeline."""
    from corpusqa.indexing.store import EmbeddedDocumentStore

    with np.load(work / "queries.npz") as queries:
        questions, vectors = [str(q) for q in queries["questions"]], queries["vectors"]
    exact = ExactTopK(work, vectors)
    with EmbeddedDocumentStore(work / "store") as store:
        started = time.perf_counter()
        store.bm25(questions[0], TOP_K)
        store.dense(vectors[0], TOP_K)
        load = time.perf_counter() - started
        bm25, _ = _timed(lambda q: store.bm25(q, TOP_K), questions)
        dense, found = _timed(lambda v: store.dense(v, TOP_K), vectors)
        stats = store.stats()
    result = {"passages": stats["passages"], "dense_index": stats["dense_index"], "load_s": load,
              "disk_bytes": stats["disk_bytes"], "query_rss_mb": _peak_rss_mb(),
              "recall@10": _recall(found, exact.positions)}
    result.update(_percentiles("bm25", bm25))
    result.update(_percentiles("dense", dense))
    result.update(_percentiles("hybrid", _hybrid(work / "store", questions)))
    return result


def _hybrid(store: Path, questions: list[str]) -> list[float]:
    from corpusqa.pipelines.query import load_query_pipeline, retrieve

    _quiet_transformers()
    pipeline = load_query_pipeline("hybrid", store)
    retrieve(pipeline, questions[0], TOP_K)  # warm-up: the embedding model, both indexes
    return _timed(lambda q: retrieve(pipeline, q, TOP_K), questions)[0]


def _timed(call, inputs) -> tuple[list[float], list]:
    """Seconds per call, one input at a time, and what the calls returned."""
    seconds, results = [], []
    for item in inputs:
        started = time.perf_counter()
        results.append(call(item))
        seconds.append(time.perf_counter() - started)
    return seconds, results


def _percentiles(name: str, seconds: list[float]) -> dict:
    return {f"{name}_p50_ms": 1000 * float(np.percentile(seconds, 50)),
            f"{name}_p95_ms": 1000 * float(np.percentile(seconds, 95))}


def _recall(found: list[list], exact: np.ndarray) -> float:
    """Share of the exact top passages (positions, per query) among those found (Documents, per query)."""
    hits = [len({d.id for d in documents} & {passage_id(int(p)) for p in row}) for documents, row in zip(found, exact)]
    return sum(hits) / exact.size


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _peak_rss_mb() -> float:
    """This process's peak resident memory (Linux's VmHWM). Not ru_maxrss: Linux carries it across exec,
    so a child would report at least its parent's memory at the fork."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


# --------------------------------------------------------------------------- the run and its table

HEADER = (f"{'passages':>10}{'write s':>9}{'commit s':>9}{'disk MB':>9}{'load s':>8}{'bm25 ms':>15}{'dense ms':>15}"
          f"{'dense':>6}{'recall@10':>10}{'hybrid ms':>15}{'write RSS MB':>13}{'query RSS MB':>13}")


def row_line(row: dict) -> str:
    def pair(name: str) -> str:
        return f"{row[f'{name}_p50_ms']:.1f} / {row[f'{name}_p95_ms']:.1f}"

    return (f"{row['passages']:>10,}{row['write_s']:>9.0f}{row['commit_s']:>9.1f}"
            f"{sum(row['disk_bytes'].values()) / 2**20:>9.0f}{row['load_s']:>8.2f}{pair('bm25'):>15}{pair('dense'):>15}"
            f"{row['dense_index']:>6}{row['recall@10']:>10.3f}{pair('hybrid'):>15}"
            f"{row['write_rss_mb']:>13.0f}{row['query_rss_mb']:>13.0f}")


def child(phase: str, args: argparse.Namespace, work: Path, **options) -> dict:
    """Run one phase in a fresh process (so its peak RSS is its own); returns what it wrote to its result file."""
    result = work / f"{phase}.json"
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work), "--squad", str(args.squad),
               "--result", str(result), "--queries", str(args.queries), "--anchors", str(args.anchors),
               "--batch", str(args.batch)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    subprocess.run(command, check=True)
    return json.loads(result.read_text())


def run_phase(args: argparse.Namespace) -> None:
    if args.phase == "prepare":
        prepare(args.squad, args.work, args.anchors, args.queries)
        result = {}
    elif args.phase == "write":
        result = write(args.work, args.size, args.batch)
    else:
        result = query(args.work)
    args.result.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=SIZES, help="passages, comma-separated, ascending (default %(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="SQuAD questions timed per size")
    parser.add_argument("--batch", type=int, help="passages per commit (default: IndexSettings().commit_passages)")
    parser.add_argument("--anchors", type=int, default=5000, help="real paragraphs embedded for the vectors")
    parser.add_argument("--squad", type=Path, default=SQUAD_TRAIN, help="SQuAD train-v1.1.json")
    parser.add_argument("--out", type=Path, help="keep the store (and the inputs) here instead of a temporary folder")
    parser.add_argument("--json", type=Path, help="also write the rows here, rewritten after each size")
    parser.add_argument("--phase", choices=("prepare", "write", "query"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.phase:  # in a child: imports nothing it does not measure (the indexer would bring in torch's models)
        run_phase(args)
        return
    from corpusqa.indexing.indexer import IndexSettings

    args.batch = args.batch or IndexSettings().commit_passages
    sizes = [int(size) for size in args.sizes.split(",")]
    if sizes != sorted(set(sizes)) or sizes[0] < FILE_PASSAGES:
        parser.error(f"--sizes must ascend, from at least {FILE_PASSAGES}")
    if args.out and (args.out / "store").exists():
        parser.error(f"{args.out / 'store'} exists: give an empty or new --out")
    work = args.out or Path(tempfile.mkdtemp(prefix="store-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        measure(args, sizes, work)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, sizes: list[int], work: Path) -> None:
    child("prepare", args, work)
    settings = {"batch": args.batch, "queries": args.queries, "anchors": args.anchors, "top_k": TOP_K}
    print(f"\nEmbeddedDocumentStore, synthetic passages; {args.queries} SQuAD questions, top {TOP_K}; "
          f"bulk commits of {args.batch} passages; ms p50 / p95\n\n{HEADER}", flush=True)
    rows, written = [], 0.0
    for size in sizes:
        wrote = child("write", args, work, size=size)
        written += wrote["write_s"]
        row = {**child("query", args, work), **wrote, "write_s": written}
        rows.append(row)
        print(row_line(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
