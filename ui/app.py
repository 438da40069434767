"""The search page that `corpusqa ui` serves: Streamlit glue over the modules beside it, which hold the logic.

Models, pipelines and the store are loaded once per process (``st.cache_resource``) and shared by every
browser session; a question's result is kept in the session, so clicking feedback or opening a passage does
not ask again.
"""

import mimetypes
import os
import threading
from dataclasses import dataclass, replace
from typing import Any

# Haystack's telemetry reads this when it is imported: a local search page does not call out.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import streamlit as st  # noqa: E402
from haystack import Document  # noqa: E402
from haystack.dataclasses import ExtractedAnswer  # noqa: E402

from corpusqa.indexing.indexer import IndexSettings  # noqa: E402
from corpusqa.indexing.store.contract import CorpusStore, StoreStats  # noqa: E402
from corpusqa.indexing.store.location import is_folder, open_store as open_location  # noqa: E402
from corpusqa.pipelines.query import RETRIEVERS, QueryPipeline, Result, ask, load_query_pipeline  # noqa: E402
from corpusqa.pipelines.store_checks import choose_retrievers, store_problem  # noqa: E402
from corpusqa.reader.options import ReadOptions  # noqa: E402
from corpusqa.ui import render  # noqa: E402
from corpusqa.ui.corpus import NotServable, folder_choices, local_time, servable_file  # noqa: E402
from corpusqa.ui.feedback import FeedbackStore, Judged, Verdict, occurrences  # noqa: E402
from corpusqa.ui.launch import UISettings  # noqa: E402
from corpusqa.ui.search import passage_filters, search_defaults  # noqa: E402
from corpusqa.ui.uploads import ALLOWED_EXTENSIONS, MB, embeds, index_upload  # noqa: E402

PAGE_TITLE = "corpusqa search"
ALL_FOLDERS = "All folders"
#: Passages shown when the reader abstains: enough to check by eye, few enough to read.
CLOSEST_PASSAGES = 3


@st.cache_resource(show_spinner="Opening the store…")
def open_store(location: str) -> CorpusStore:
    """The store; a folder not made yet is made (uploads fill it), a server index is not (`corpusqa index`)."""
    return open_location(location, create=is_folder(location))


@st.cache_resource(show_spinner="Loading the retriever and the reader (once)…")
def open_pipeline(retriever: str, location: str) -> QueryPipeline:
    pipeline = load_query_pipeline(retriever, location)
    pipeline.retrieval.warm_up()
    pipeline.reader.warm_up()
    return pipeline


@st.cache_resource(show_spinner="Loading the embedder (once)…")
def open_embedder() -> Any:
    embedder = IndexSettings().embedder()
    embedder.warm_up()
    return embedder


@st.cache_resource
def open_feedback(folder: str) -> FeedbackStore:
    return FeedbackStore.beside(folder)


@st.cache_resource
def indexing_lock(location: str) -> threading.Lock:
    """One upload indexed at a time per store, whichever session sent it: indexing is one writer's work."""
    return threading.Lock()


@dataclass(frozen=True)
class Search:
    """The sidebar's choices: what a question is asked with, and the key its result is kept under."""

    retriever: str
    passages: int
    file_types: tuple[str, ...]
    folder: str | None
    options: ReadOptions

    def filters(self) -> dict[str, Any] | None:
        return passage_filters(self.file_types, self.folder)


def main() -> None:
    st.set_page_config(page_title=PAGE_TITLE, page_icon="🔎", layout="centered")
    st.title(PAGE_TITLE)
    settings = UISettings.from_environment()
    try:
        store_pages(settings)
    except Exception as error:
        problem = store_problem(settings.store, error)
        if problem is None:
            raise
        st.error(f"**The store cannot answer.** {problem}", icon="⚠️")


def store_pages(settings: UISettings) -> None:
    """The search, corpus and feedback tabs over the store; a store that cannot answer (its database missing
    or damaged...) raises, for ``main`` to show why instead of the tabs."""
    location = str(settings.store)
    store = open_store(location)
    stats = store.stats()
    st.caption(f"Answers found in the {stats['files']:,} files indexed in `{location}`")
    files = store.files()
    with st.sidebar:
        search = sidebar(settings, location, store, stats, files) if stats["passages"] else None
    search_tab, corpus_tab, feedback_tab = st.tabs(["Search", "Corpus", "Feedback"])
    with search_tab:
        search_page(settings, store, search)
    with corpus_tab:
        corpus_page(settings, store, stats, files)
    with feedback_tab:
        feedback_page(open_feedback(str(settings.folder)))


def sidebar(settings: UISettings, location: str, store: CorpusStore, stats: StoreStats, files: list) -> Search:
    st.header("Search settings")
    choice = choose_retrievers(store, location)  # hybrid, or BM25 with a note on a store without embeddings
    offered = list(RETRIEVERS) if choice.note is None else list(choice.retrievers)
    if choice.note is not None:
        st.info(f"{choice.note[0].upper()}{choice.note[1:]}.")
    retriever = st.radio(
        "Retriever", offered, index=offered.index(choice.retriever), horizontal=True,
        help="bm25 matches words, dense matches meaning, hybrid fuses both. Dense and hybrid need a store "
        "indexed with embeddings.",
    )  # fmt: skip
    defaults = search_defaults(open_pipeline(retriever, location), settings.options)
    passages = st.slider(
        "Passages to read", 1, max(50, defaults.passages), defaults.passages, key=f"passages-{retriever}",
        help="How many of the best retrieved passages the reader reads: more finds more, and reads longer.",
    )  # fmt: skip
    answers = st.slider("Answers to show", 1, 20, defaults.options.top_k)
    file_types = st.multiselect("File types", sorted(t for t in stats["file_types"] if t), placeholder="All types")
    folders = folder_choices(record.path for record in files)
    chosen = st.selectbox("Folder", [ALL_FOLDERS, *folders], help="Only passages of files in this folder or below.")
    threshold = st.number_input(
        "No-answer threshold", value=float(defaults.no_answer_threshold), step=1.0, format="%.2f",
        help="The reader abstains when its no-answer score beats its best answer's by more than this (in "
        f"logits): lower abstains more often, higher answers more often. Default {defaults.no_answer_threshold:.2f}: "
        f"{defaults.threshold_source}.",
    )  # fmt: skip
    options = replace(defaults.options, top_k=answers, no_answer_threshold=threshold)
    return Search(retriever, passages, tuple(file_types), folders.get(chosen), options)


def search_page(settings: UISettings, store: CorpusStore, search: Search | None) -> None:
    location = str(settings.store)
    if search is None:
        st.info(
            f"The store at `{location}` holds no documents yet. Add some in the **Corpus** tab, or index folders "
            f"with `corpusqa index PATH --store {location}`."
        )
        return
    question = st.text_input(
        "Question", key="question", placeholder="Ask about the indexed documents, then press Enter"
    ).strip()
    if not question:
        return
    key = (question, search)
    kept = st.session_state.get("result")
    if kept is None or kept[0] != key:
        with st.spinner("Searching…"):
            try:
                pipeline = open_pipeline(search.retriever, location)
                result = ask(pipeline, question, search.passages, search.filters(), search.options)
            except ValueError as error:
                st.error(str(error))
                return
        st.session_state["result"] = kept = (key, result)
    show_result(kept[1], store, open_feedback(str(settings.folder)), filtered=search.filters() is not None)


def show_result(result: Result, store: CorpusStore, feedback: FeedbackStore, filtered: bool) -> None:
    spans = [answer for answer in result.answers if answer.data is not None]
    no_answer = next((answer for answer in result.answers if answer.data is None), None)
    st.caption(
        f"Retrieval {result.retrieval_seconds * 1000:.0f} ms · reading {result.reading_seconds * 1000:.0f} ms · "
        f"{len(result.passages)} passages read"
    )
    if not result.passages:
        where = " in the chosen file types and folder: widen them" if filtered else " for this question"
        st.warning(f"No passage was found{where}.")
    elif result.abstained:
        likelihood = f" ({render.percent(no_answer.score)} sure)" if no_answer else ""
        st.warning(
            f"**No answer found.** The reader judges that none of the {len(result.passages)} passages it read "
            f"answers this question{likelihood}. The closest passages are below; a higher no-answer threshold "
            "in the sidebar shows its best guess as an answer."
        )
        for rank, document in enumerate(result.passages[:CLOSEST_PASSAGES], 1):
            with st.container(border=True):
                st.markdown(f"**Passage {rank}** · {render.markdown_escaped(render.source(document))}")
                st.html(render.passage(document))
                download_original(store, document, key=f"passage-{rank}")
        if spans:
            st.subheader("Weaker candidates")
    for rank, answer in enumerate(spans, 1):
        show_answer(rank, answer, store, feedback)
    if no_answer is not None and not result.abstained:
        st.caption(f"No answer in these passages: {render.percent(no_answer.score)}")


def show_answer(rank: int, answer: ExtractedAnswer, store: CorpusStore, feedback: FeedbackStore) -> None:
    judged = Judged.from_answer(answer)
    with st.container(border=True):
        st.html(render.answer_header(rank, answer))
        st.html(render.answer_in_context(answer))
        with st.expander("Whole passage and original file"):
            st.html(render.answer_in_passage(answer), unsafe_allow_javascript=True)
            download_original(store, answer.document, key=judged.key)
        verdict_controls(judged, feedback)


def download_original(store: CorpusStore, document: Document, key: str) -> None:
    try:
        path = servable_file(store, document.meta.get("file_path"))
    except NotServable as reason:
        st.caption(f"Original file not offered: {reason}")
        return
    st.download_button(
        f"Download {path.name}", data=path.read_bytes, file_name=path.name, key=f"download-{key}",
        mime=mimetypes.guess_type(path.name)[0] or "application/octet-stream", on_click="ignore",
    )  # fmt: skip


def verdict_controls(judged: Judged, feedback: FeedbackStore) -> None:
    """Thumbs up or down; down asks for the right span (typed, then picked if it occurs more than once)."""
    stored = feedback.verdict(judged)
    widget = f"verdict-{judged.key}"
    value = st.feedback(
        "thumbs", key=widget, default=None if stored is None else int(stored.approved),
        on_change=record_verdict, args=(judged, feedback, widget),
    )  # fmt: skip
    if value == 0:
        correction_controls(judged, feedback, stored)


def record_verdict(judged: Judged, feedback: FeedbackStore, widget: str) -> None:
    value = st.session_state[widget]
    if value is None:
        feedback.forget(judged)
    elif value == 1:
        feedback.approve(judged)
    else:
        feedback.reject(judged)


def correction_controls(judged: Judged, feedback: FeedbackStore, stored: Verdict | None) -> None:
    if stored is not None and stored.correction is not None:
        start, end = stored.correction
        st.caption(f"Saved: the right answer is “{render.markdown_escaped(judged.passage[start:end])}”.")
    elif stored is not None and stored.unanswerable:
        st.caption("Saved: this passage does not answer the question.")
    typed = st.text_input(
        "The right answer, as the passage words it", key=f"correction-{judged.key}",
        placeholder="Type or paste it from the whole passage, then press Enter",
    )  # fmt: skip
    spans = occurrences(judged.passage, typed)
    if typed.strip() and not spans:
        st.warning("This passage does not contain that text; a correction must be words of the passage.")
    chosen = spans[0] if spans else None
    if len(spans) > 1:
        picked = st.radio(
            "It occurs more than once: which one answers?", range(len(spans)), key=f"occurrence-{judged.key}",
            format_func=lambda number: render.occurrence_label(judged.passage, spans[number]),
        )  # fmt: skip
        chosen = spans[picked]
    save, unanswerable = st.columns(2)
    save.button(
        "Save correction", key=f"save-{judged.key}", disabled=chosen is None,
        on_click=feedback.reject, args=(judged,), kwargs={"correction": chosen},
    )  # fmt: skip
    unanswerable.button(
        "The passage does not answer", key=f"unanswerable-{judged.key}",
        on_click=feedback.reject, args=(judged,), kwargs={"unanswerable": True},
    )  # fmt: skip


def corpus_page(settings: UISettings, store: CorpusStore, stats: StoreStats, files: list) -> None:
    files_metric, passages_metric, last_metric = st.columns([1, 1, 2])
    files_metric.metric("Files", f"{stats['files']:,}")
    passages_metric.metric("Passages", f"{stats['passages']:,}")
    last_metric.metric("Last indexed", local_time(stats["last_indexed_at"]))
    if stats["file_types"]:
        st.dataframe([{"file type": kind, **counts} for kind, counts in stats["file_types"].items()], hide_index=True)
    roots = store.roots()
    if roots:
        st.markdown("**Indexed folders**")
        st.code("\n".join(roots), language=None)
    if files:
        with st.expander(f"Indexed files ({len(files):,})"):
            rows = [{"file": r.path, "passages": r.passages, "indexed": local_time(r.indexed_at)} for r in files]
            st.dataframe(rows, hide_index=True)
    upload_box(settings, store, stats)


def upload_box(settings: UISettings, store: CorpusStore, stats: StoreStats) -> None:
    """New files are indexed as they arrive, once each; the page then reloads to show the new counts."""
    st.subheader("Add documents")
    uploaded = st.file_uploader(
        "PDF, Word, HTML, Markdown or text files: each is indexed as it arrives",
        type=ALLOWED_EXTENSIONS, accept_multiple_files=True, max_upload_size=settings.max_upload_mb,
    )  # fmt: skip
    outcomes = st.session_state.setdefault("upload_outcomes", {})
    new = [file for file in uploaded or [] if file.file_id not in outcomes]
    if new:
        embed = embeds(stats)
        progress = st.progress(0.0)
        for number, file in enumerate(new):
            progress.progress(number / len(new), text=f"Indexing {file.name} ({number + 1} of {len(new)})…")
            with indexing_lock(str(settings.store)):
                outcomes[file.file_id] = index_upload(
                    store, file.name, file.getvalue(), max_bytes=settings.max_upload_mb * MB,
                    embedder=open_embedder() if embed else None, embed=embed, folder=settings.folder,
                )  # fmt: skip
        st.session_state.pop("result", None)  # the corpus changed: ask again
        st.rerun()
    for file in uploaded or []:
        outcome = outcomes[file.file_id]
        name = render.markdown_escaped(outcome.name)
        if outcome.error:
            st.error(f"**{name}** was not indexed: {render.markdown_escaped(outcome.error)}")
        elif outcome.unchanged:
            st.info(f"**{name}** is indexed already (the same file was uploaded before).")
        else:
            st.success(f"**{name}** is indexed: {outcome.passages} passages, searchable now.")


def feedback_page(feedback: FeedbackStore) -> None:
    counts = feedback.counts()
    approved, rejected, exported = st.columns(3)
    approved.metric("Approved answers", counts["approved"])
    rejected.metric("Rejected answers", counts["rejected"])
    exported.metric("Training examples", counts["exported"])
    st.caption(
        f"Of the rejected, {counts['corrected']} have a corrected answer and {counts['unanswerable']} a passage "
        "that does not answer; rejections without either are kept but not exported."
    )
    st.download_button(
        "Download as SQuAD 2.0 training data", data=lambda: feedback.squad_json().encode("utf-8"),
        file_name="corpusqa-feedback.json", mime="application/json", disabled=not counts["exported"],
        on_click="ignore",
    )  # fmt: skip
    st.caption(
        "Fine-tune the reader on it with `corpusqa train --train corpusqa-feedback.json --model "
        "models/minilm-squad --output runs/reader-feedback`; the same file comes from "
        "`corpusqa ui --store DIR --export-feedback FILE`."
    )


main()
