"""The query pipelines: each YAML loads, retrieves from the store and reads, as the CLI and UI run them."""

import json
from dataclasses import replace

import pytest
from haystack import Document

from corpusqa.indexing.indexer import IndexSettings
from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import RETRIEVERS, add_reranker, ask, load_query_pipeline, retrieve
from corpusqa.reader.hardware import CpuFeatures

PASSAGES = [
    ("rhine.txt", "txt", "The Rhine flows from the Swiss Alps to the North Sea through Germany and the Netherlands."),
    ("tower.pdf", "pdf", "The Eiffel Tower in Paris was completed in 1889 for the World's Fair."),
    ("normans.md", "md", "The Normans gave their name to Normandy, a region in northern France."),
    ("apollo.html", "html", "Apollo 11 landed the first humans on the Moon in July 1969."),
]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    documents = [
        Document(content=text, meta={"file_name": name, "file_type": kind, "file_path": f"/corpus/{name}", "split_idx_start": 0, "source_id": name})
        for name, kind, text in PASSAGES
    ]
    embedder = IndexSettings().embedder()
    embedder.warm_up()
    with EmbeddedDocumentStore(folder) as store:
        store.write_documents(embedder.run(documents)["documents"])
    return folder


@pytest.fixture(scope="module")
def reader_settings(tiny_models):
    return {"model": str(tiny_models["bert-uncased"]), "dtype": "float32"}


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_each_pipeline_retrieves_the_passage_and_reads_it(store_dir, reader_settings, retriever):
    pipeline = load_query_pipeline(retriever, store_dir, reader_settings)
    three = replace(pipeline.reader.options, top_k=3)
    result = ask(pipeline, "When was the Eiffel Tower completed?", passages=2, options=three)
    assert result.passages[0].meta["file_name"] == "tower.pdf"
    assert len(result.passages) <= 2 and result.seconds > 0
    spans = [a for a in result.answers if a.data is not None]
    assert 0 < len(spans) <= 3
    assert all(a.data == a.document.content[a.document_offset.start : a.document_offset.end] for a in spans)


def test_retrieval_and_reading_are_timed_apart(store_dir, reader_settings):
    result = ask(load_query_pipeline("dense", store_dir, reader_settings), "Where does the Rhine flow?", passages=2)
    assert result.retrieval_seconds > 0 and result.reading_seconds > 0
    assert result.seconds == result.retrieval_seconds + result.reading_seconds


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_more_passages_is_the_same_ranking_cut_later(store_dir, reader_settings, retriever):
    """So recall@20 and reading the top 10 can come from one retrieval, and a user asking for more passages
    does not reorder the ones already shown (a fused pipeline keeps its retrievers' depth)."""
    pipeline = load_query_pipeline(retriever, store_dir, reader_settings)
    question = "Which landing on the Moon happened in 1969?"
    for shorter in (1, 2, 3):
        assert [d.id for d in retrieve(pipeline, question, 4)][:shorter] == [d.id for d in retrieve(pipeline, question, shorter)]


def test_a_fused_pipeline_keeps_its_retrievers_depth_whatever_the_passages_read(store_dir, reader_settings, monkeypatch):
    """Fusing lists cut at the passages read would reorder them as that number changes: the retrievers feeding
    the fusion are asked for their YAML top_k (20), or more when more passages are read."""
    pipeline = load_query_pipeline("hybrid", store_dir, reader_settings)
    asked = []
    for method in ("bm25", "dense"):
        store = pipeline.retrieval.get_component(method).document_store  # each retriever has its own
        original = getattr(store, method)

        def recorded(first, top_k, filters=None, _run=original, _name=method):
            asked.append((_name, top_k))
            return _run(first, top_k, filters)

        monkeypatch.setattr(store, method, recorded)
    for passages, depth in ((2, 20), (30, 30)):
        asked.clear()
        assert len(retrieve(pipeline, "Where does the Rhine flow?", passages)) <= passages
        assert sorted(asked) == [("bm25", depth), ("dense", depth)]


def test_filters_restrict_the_passages_read(store_dir, reader_settings):
    pipeline = load_query_pipeline("bm25", store_dir, reader_settings)
    only_md = {"field": "meta.file_type", "operator": "==", "value": "md"}
    question = "Is the Eiffel Tower in Normandy, France?"
    assert "pdf" in [p.meta["file_type"] for p in ask(pipeline, question, passages=3).passages]
    result = ask(pipeline, question, passages=3, filters=only_md)
    assert [p.meta["file_type"] for p in result.passages] == ["md"]


def test_an_unknown_retriever_is_refused():
    with pytest.raises(ValueError, match="retriever must be one of"):
        load_query_pipeline("tfidf")


def test_ask_prints_json_with_file_offsets(store_dir, capsys):
    """With the shipped reader, as a user runs it."""
    code = main(["ask", "Who gave their name to Normandy?", "--store", str(store_dir), "--retriever", "bm25", "--json", "--passages", "2"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["question"] == "Who gave their name to Normandy?"
    best = record["answers"][0]
    assert best["file_start"] == best["start"] and best["meta"]["file_name"]
    assert best["answer"] == best["context"][best["context_start"] : best["context_end"]]
    assert all(answer["answer"] for answer in record["answers"]), "the no-answer has a field of its own"
    assert set(record["no_answer"]) == {"score"} and isinstance(record["abstained"], bool)
    assert [p["document_id"] for p in record["passages"]] and len(record["passages"]) <= 2


def test_reader_overrides_set_init_parameters_and_option_fields(store_dir, reader_settings):
    pipeline = load_query_pipeline("bm25", store_dir, {**reader_settings, "top_k": 2, "max_answer_length": 4})
    assert pipeline.reader.dtype == "float32"
    assert (pipeline.reader.options.top_k, pipeline.reader.options.max_answer_length) == (2, 4)
    assert pipeline.reader.options.corpus_retriever == "bm25", "the YAML's option fields not named are kept"


def test_ask_without_a_store_says_how_to_make_one(tmp_path, capsys):
    code = main(["ask", "Who?", "--store", str(tmp_path / "none")])
    assert code == 2 and "index documents first" in capsys.readouterr().err


def test_open_evaluation_counts_recall_and_scores_the_top_answer(store_dir, reader_settings):
    from corpusqa.pipelines.open_eval import evaluate_open
    from corpusqa.reader.squad_metric import SquadExample

    examples = [
        SquadExample("q1", "t", "When was the Eiffel Tower completed?", "", ["1889"], [0], False),
        SquadExample("q2", "t", "Who landed on the Moon?", "", ["a phrase in no passage"], [0], False),
    ]
    metrics = evaluate_open(examples, ["bm25"], store_dir, passages=2, reader=reader_settings, progress=False)["bm25"]
    assert metrics["recall@1"] == metrics["recall@20"] == 50.0, "only q1's answer lies in a passage"
    assert metrics["total"] == 2 and 0 <= metrics["exact"] <= 50.0
    assert metrics["retrieval_p50_ms"] > 0 and metrics["end_to_end_p95_ms"] >= metrics["end_to_end_p50_ms"]


@pytest.mark.parametrize(("threshold", "declined"), [(1e9, 0.0), (-1e9, 100.0)])
def test_open_evaluation_reports_the_share_declined_without_the_article_and_em_kept(
    store_dir, reader_settings, threshold, declined
):
    """A reader that never abstains keeps its EM and declines nothing; one that always abstains declines all."""
    from corpusqa.pipelines.open_eval import evaluate_open
    from corpusqa.reader.squad_metric import SquadExample

    examples = [
        SquadExample("q1", "tower", "When was the Eiffel Tower completed?", "", ["1889"], [0], False),
        SquadExample("q2", "apollo", "When did Apollo 11 land?", "", ["July 1969"], [0], False),
    ]
    reader = {**reader_settings, "no_answer_threshold": threshold}
    metrics = evaluate_open(examples, ["bm25"], store_dir, passages=2, reader=reader, progress=False, unanswerable=1)
    metrics = metrics["bm25"]
    assert metrics["unanswerable"] == 1 and metrics["unanswerable_declined"] == declined
    assert metrics["exact_with_abstention"] == (metrics["exact"] if declined == 0 else 0.0)
    assert "unanswerable_declined" not in evaluate_open(examples, ["bm25"], store_dir, passages=2, reader=reader,
                                                         progress=False)["bm25"]


@pytest.mark.parametrize(("amx", "expected"), [(True, True), (False, False)])
def test_the_question_is_embedded_in_bf16_on_cpus_with_amx_and_in_fp32_elsewhere(store_dir, reader_settings,
                                                                                 monkeypatch, amx, expected):
    import torch

    monkeypatch.setattr("corpusqa.reader.hardware.cpu_features", lambda: CpuFeatures(amx_bf16=amx))
    pipeline = load_query_pipeline("dense", store_dir, reader_settings)
    embedder = pipeline.retrieval.get_component("embedder")
    seen, original = [], embedder.run

    def recorded(text):
        seen.append(torch.is_autocast_enabled("cpu"))
        return original(text=text)

    monkeypatch.setattr(embedder, "run", recorded)
    assert retrieve(pipeline, "Where does the Rhine flow?", passages=1)
    assert seen == [expected]


def test_only_question_embedders_run_in_bf16_a_reranker_keeps_retrieval_as_loaded(store_dir, reader_settings):
    for retriever in RETRIEVERS:
        assert load_query_pipeline(retriever, store_dir, reader_settings).retrieves_in_bf16, retriever
    reranking = add_reranker(load_query_pipeline("dense", store_dir, reader_settings), "a-cross-encoder")
    assert not reranking.retrieves_in_bf16
