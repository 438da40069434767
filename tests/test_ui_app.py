"""The search page as an analyst uses it, run by Streamlit's AppTest over the test corpus (one file of each
format) with the shipped reader, started as `corpusqa ui --no-answer-threshold 0` would start it."""

import re
import shutil

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import corpusqa.pipelines.query

from corpus_fixtures import bad_corpus, good_corpus
from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.ui.feedback import FeedbackStore, Judged
from corpusqa.ui.launch import APP, UISettings
from corpusqa.ui.uploads import UPLOADS_FOLDER

#: Seconds a page run may take: the first loads the reader and the embedder, on a machine that may be busy.
RUN_TIMEOUT = 300
OXYGEN_15 = "What is the half-life of Oxygen-15?"


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    """The test corpus, indexed with embeddings so that every retriever is offered."""
    root = tmp_path_factory.mktemp("ui_corpus")
    good_corpus(root / "docs")
    with EmbeddedDocumentStore(root / "store") as store:
        index_paths([root / "docs"], store, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def bm25_store(tmp_path_factory):
    """The test corpus, indexed without embeddings (`corpusqa index --no-embed`)."""
    root = tmp_path_factory.mktemp("ui_bm25")
    good_corpus(root / "docs")
    with EmbeddedDocumentStore(root / "store") as store:
        index_paths([root / "docs"], store, embed=False, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def upload_store(corpus_store, tmp_path_factory):
    """A copy that uploads may change."""
    return shutil.copytree(corpus_store, tmp_path_factory.mktemp("ui_uploads") / "store")


@pytest.fixture
def open_page(corpus_store, monkeypatch):
    def opened(store=corpus_store) -> AppTest:
        for name, value in UISettings(store, options={"no_answer_threshold": 0.0}).environment().items():
            monkeypatch.setenv(name, value)
        page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT).run()
        assert not page.exception, page.exception
        return page

    return opened


def ask(page: AppTest, question: str) -> AppTest:
    page.text_input(key="question").input(question).run()
    assert not page.exception, page.exception
    return page


def shown(page: AppTest, kind: str) -> list[str]:
    """The HTML blocks of one kind ("answer", "context", "passage") in page order."""
    return [block.value for block in page.html if f'class="corpusqa-{kind}"' in block.value]


def result(page: AppTest):
    return page.session_state["result"][1]


def read(markdown: str) -> str:
    """Markdown as a reader sees it: escaped characters as themselves."""
    return re.sub(r"\\(.)", r"\1", markdown)


def test_a_question_shows_the_answer_marked_in_its_passage_with_source_score_and_timing(open_page):
    page = ask(open_page(), OXYGEN_15)
    header, context = shown(page, "answer")[0], shown(page, "context")[0]
    assert "1. 122 seconds" in header and "oxygen.docx" in header and re.search(r">\d{1,2}%<", header)
    best = result(page).answers[0]
    marked = re.search(r"<mark[^>]*>(.*?)</mark>", context).group(1)
    assert marked == best.data == best.document.content[best.document_offset.start : best.document_offset.end]
    assert any(re.fullmatch(r"Retrieval \d+ ms · reading \d+ ms · 10 passages read", c.value) for c in page.caption)


def test_the_page_has_a_title_and_the_whole_passage_runs_its_scroll_to_the_answer(open_page):
    page = open_page()
    assert [title.value for title in page.title] == ["corpusqa search"]
    page = ask(page, OXYGEN_15)
    passages = [block for block in page.html if 'class="corpusqa-passage"' in block.value]
    assert passages and all(block.proto.unsafe_allow_javascript for block in passages)


def test_a_pdf_answer_names_its_page(open_page):
    page = ask(open_page(), "Who improved the steam engine?")
    assert re.search(r"steam_engine\.pdf, page \d", shown(page, "answer")[0])


def test_an_unanswerable_question_says_so_and_still_shows_the_closest_passages(open_page):
    page = ask(open_page(), "Who won the 2018 football world cup?")
    assert result(page).abstained
    assert "No answer found" in page.warning[0].value
    closest = [read(block.value) for block in page.markdown if block.value.startswith("**Passage ")]
    assert [label.split(" · ")[0] for label in closest] == ["**Passage 1**", "**Passage 2**", "**Passage 3**"]


def test_file_type_and_folder_filters_change_what_is_read(open_page):
    page = ask(open_page(), "Where does the Rhine flow?")
    assert "rhine.txt" in shown(page, "answer")[0]
    page.sidebar.multiselect[0].set_value(["md"]).run()
    assert {p.meta["file_name"] for p in result(page).passages} == {"geology.md"}
    assert all("geology.md" in header for header in shown(page, "answer"))
    page.sidebar.multiselect[0].set_value([]).run()
    page.sidebar.selectbox[0].select("sub").run()
    assert {p.meta["file_name"] for p in result(page).passages} == {"apollo.html", "geology.md"}


def test_the_threshold_control_decides_when_the_reader_abstains(open_page):
    page = ask(open_page(), OXYGEN_15)
    assert not result(page).abstained
    page.sidebar.number_input[0].set_value(-100.0).run()
    assert result(page).abstained and "No answer found" in page.warning[0].value


def test_the_reader_and_retriever_load_once_per_process_not_per_question_or_session(open_page, monkeypatch):
    st.cache_resource.clear()
    loads, load = [], corpusqa.pipelines.query.load_query_pipeline
    monkeypatch.setattr(corpusqa.pipelines.query, "load_query_pipeline", lambda *a: loads.append(a) or load(*a))
    page = ask(open_page(), OXYGEN_15)
    ask(page, "Where does the Rhine flow?")
    ask(open_page(), "Who improved the steam engine?")
    assert len(loads) == 1


def test_thumbs_and_corrections_are_stored_and_counted_for_export(open_page, corpus_store):
    page = ask(open_page(), OXYGEN_15)
    first, second = [Judged.from_answer(a) for a in result(page).answers if a.data is not None][:2]
    page.feedback[0].set_value(1).run()
    page.feedback[1].set_value(0).run()
    page.text_input(key=f"correction-{second.key}").input("122 seconds").run()
    page.button(key=f"save-{second.key}").click().run()
    feedback = FeedbackStore.beside(corpus_store)
    assert feedback.verdict(first).approved
    start, end = feedback.verdict(second).correction
    assert second.passage[start:end] == "122 seconds"
    metrics = {metric.label: metric.value for metric in page.metric}
    assert metrics["Approved answers"] == "1" and metrics["Training examples"] == "2"


def test_an_uploaded_file_is_indexed_and_answers_the_next_question(open_page, upload_store):
    page = open_page(upload_store)
    text = b"The Zorblax reactor in Lund was commissioned in 1987 after eleven years of planning.\n"
    page.file_uploader[0].set_value(("reactor notes.txt", text, "text/plain")).run()
    assert "is indexed: 1 passages" in page.success[0].value
    with EmbeddedDocumentStore(upload_store) as store:
        assert store.file_record(str(upload_store.resolve() / UPLOADS_FOLDER / "reactor notes.txt")) is not None
    page = ask(page, "When was the Zorblax reactor commissioned?")
    assert "1. 1987" in shown(page, "answer")[0] and "reactor notes.txt" in shown(page, "answer")[0]


def test_a_bad_upload_shows_the_converter_s_reason_and_indexes_nothing(open_page, upload_store, tmp_path):
    corrupt = bad_corpus(tmp_path)["corrupt_pdf"].read_bytes()
    with EmbeddedDocumentStore(upload_store) as store:
        before = [record.path for record in store.files()]
    page = open_page(upload_store)
    page.file_uploader[0].set_value(("scan.pdf", corrupt, "application/pdf")).run()
    assert read(page.error[0].value).startswith("**scan.pdf** was not indexed: corrupt PDF (")
    with EmbeddedDocumentStore(upload_store) as store:
        assert [record.path for record in store.files()] == before
    assert not (upload_store / UPLOADS_FOLDER / "scan.pdf").exists()


def test_an_empty_store_invites_documents_instead_of_a_question(open_page, tmp_path):
    page = open_page(tmp_path / "empty")
    assert "holds no documents yet" in page.info[0].value
    assert not page.text_input and len(page.file_uploader) == 1


def test_a_store_without_embeddings_answers_with_bm25_and_says_so(open_page, bm25_store):
    page = open_page(bm25_store)
    assert [info.value for info in page.sidebar.info] == [
        f"The store at {bm25_store} has no embeddings (indexed with --no-embed): answering with BM25."
    ]
    assert page.sidebar.radio[0].options == ["bm25"]
    page = ask(page, OXYGEN_15)
    assert "1. 122 seconds" in shown(page, "answer")[0]


@pytest.mark.parametrize("damage", ["database deleted", "database garbled"])
def test_a_store_that_cannot_answer_says_which_and_what_to_do_instead_of_a_trace(open_page, corpus_store,
                                                                                  tmp_path, damage):
    store = shutil.copytree(corpus_store, tmp_path / "store")
    database = store / "store.sqlite3"
    for file in store.glob("store.sqlite3-*"):
        file.unlink()
    if damage == "database deleted":
        database.unlink()
    else:
        database.write_bytes(b"\x00" * 100 + database.read_bytes()[100:])
    page = open_page(store)
    said = read(page.error[0].value)
    assert f"store {store}: " in said
    hint = "corpusqa store repair" if damage == "database deleted" else "corpusqa store check"
    assert f"`{hint} --store {store}`" in said
    assert not page.text_input and not page.tabs, "no search over a store that cannot answer"
