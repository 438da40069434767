"""The search UI's parts, without Streamlit: marking answers, uploads, feedback, downloads, settings, launching."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from haystack import Document
from haystack.dataclasses import ExtractedAnswer

from corpus_fixtures import bad_corpus
from corpusqa.indexing.indexer import index_paths
from corpusqa.indexing.store import EmbeddedDocumentStore, FileRecord
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import load_query_pipeline
from corpusqa.reader.squad_metric import load_squad
from corpusqa.ui import render
from corpusqa.ui.corpus import NotServable, folder_choices, servable_file
from corpusqa.ui.feedback import FeedbackStore, Judged, occurrences
from corpusqa.ui.launch import UISettings, streamlit_command
from corpusqa.ui.search import passage_filters, search_defaults
from corpusqa.ui.uploads import MB, UPLOADS_FOLDER, UploadRefused, index_upload, safe_name, save_upload

TOWER = "The fair of 1889 needed a gate. The Eiffel Tower, its gate, was completed in 1889 by Gustave Eiffel."
SECOND_1889 = TOWER.rindex("1889")


def answer_at(content: str, start: int, end: int, context_chars: int = 20, **meta) -> ExtractedAnswer:
    """An answer as the reader makes it: the span at its offsets, and a context snippet around it."""
    document = Document(content=content, meta={"file_name": "tower.txt", **meta})
    left, right = max(0, start - context_chars), min(len(content), end + context_chars)
    return ExtractedAnswer(
        query="When was the tower completed?", score=0.5, data=content[start:end], document=document,
        context=content[left:right], document_offset=ExtractedAnswer.Span(start, end),
        context_offset=ExtractedAnswer.Span(start - left, end - left),
    )  # fmt: skip


# -- marking answers ---------------------------------------------------------------------------------


def test_the_answer_is_marked_at_its_offsets_not_at_its_first_occurrence():
    html = render.answer_in_passage(answer_at(TOWER, SECOND_1889, SECOND_1889 + 4))
    before, marked = html.split("<mark", 1)
    assert "fair of 1889" in before and "completed in " in before
    assert marked.split(">", 1)[1].startswith("1889</mark> by Gustave")


def test_the_context_snippet_marks_the_same_span_and_says_where_it_cuts_the_passage():
    html = render.answer_in_context(answer_at(TOWER, SECOND_1889, SECOND_1889 + 4, context_chars=10))
    assert html.startswith('<p class="corpusqa-context">…') and html.endswith("…</p>")
    assert "pleted in <mark" in html and ">1889</mark> by" in html
    whole = render.answer_in_context(answer_at(TOWER, SECOND_1889, SECOND_1889 + 4, context_chars=1000))
    assert "…" not in whole


def test_a_passage_s_markup_is_shown_as_text_never_run():
    content = '<script>alert("x")</script> costs <b>5 & 6</b> euros'
    start = content.index("<b>")
    html = render.answer_in_passage(answer_at(content, start, start + len("<b>5 & 6</b>")))
    assert "&lt;script&gt;" in html and html.count("<script>") == 1, "the only script is the page's own"
    assert html.endswith(render.SCROLL_TO_ANSWER)
    assert "&lt;b&gt;5 &amp; 6&lt;/b&gt;</mark>" in html


def test_the_whole_passage_scrolls_to_its_answer_whenever_it_comes_into_view():
    html = render.answer_in_passage(answer_at(TOWER, SECOND_1889, SECOND_1889 + 4))
    box, script = html.split("<script>")
    assert "overflow-y: auto" in box and "position: relative" in box, "the mark's offsetTop is its depth in the box"
    assert "document.currentScript.previousElementSibling" in script, "the script finds its own passage"
    assert "new ResizeObserver" in script and "box.scrollTop = mark.offsetTop" in script


def test_offsets_outside_the_passage_are_an_error_not_a_guess():
    with pytest.raises(ValueError, match="outside"):
        render.marked("short", 3, 9)


def test_pdf_page_breaks_show_as_line_breaks_and_the_mark_stays_on_the_answer():
    content = "end of page one\fOn page two the tower opened in 1889."
    start = content.index("1889")
    html = render.answer_in_passage(answer_at(content, start, start + 4))
    assert "\f" not in html and "one\nOn page two" in html and ">1889</mark>" in html


def test_the_source_names_the_file_and_the_pdf_page_the_answer_stands_on():
    content = "end of page one\fOn page two the tower opened in 1889."
    passage = Document(content=content, meta={"file_name": "tower.pdf", "file_type": "pdf", "page_number": 1})
    assert render.source(passage, content.index("1889")) == "tower.pdf, page 2"
    assert render.source(passage) == "tower.pdf, page 1"
    assert render.source(Document(content="x", meta={"file_name": "notes.md"})) == "notes.md"


def test_the_header_shows_rank_answer_score_and_source():
    header = render.answer_header(2, answer_at(TOWER, SECOND_1889, SECOND_1889 + 4))
    assert "2. 1889" in header and "50%" in header and "tower.txt" in header


@pytest.mark.parametrize("score,shown", [(0.873, "87%"), (0.5, "50%"), (0.001, "<1%"), (0.999, ">99%")])
def test_scores_read_as_whole_percentages_never_a_false_0_or_100(score, shown):
    assert render.percent(score) == shown


def test_markdown_characters_in_labels_are_escaped():
    assert render.markdown_escaped("*not bold* $5") == r"\*not bold\* \$5"


# -- uploads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uploaded,saved",
    [
        ("../../etc/cron.d/job.txt", "job.txt"),
        ("C:\\Users\\ana\\Q3 report.PDF", "Q3 report.pdf"),
        (".bashrc.md", "bashrc.md"),
        ("~$draft.docx", "draft.docx"),
        ("a<b>|c?.html", "a_b_c_.html"),
        ("..txt", "upload.txt"),
        ("résumé.txt", "résumé.txt"),
    ],
)
def test_upload_names_lose_folders_hidden_prefixes_and_odd_characters(uploaded, saved):
    assert safe_name(uploaded) == saved


def test_an_upload_is_saved_inside_the_folder_whatever_its_name(tmp_path):
    folder = tmp_path / "uploads"
    for name in ["../../escape.txt", "/etc/passwd.txt", "..\\..\\win.txt", "sub/dir/deep.txt"]:
        path = save_upload(folder, name, b"some text", max_bytes=MB)
        assert path.parent == folder and path.read_bytes() == b"some text"


def test_a_taken_name_gets_a_number_and_the_same_bytes_are_the_same_file(tmp_path):
    first = save_upload(tmp_path, "notes.txt", b"one", max_bytes=MB)
    second = save_upload(tmp_path, "notes.txt", b"two", max_bytes=MB)
    again = save_upload(tmp_path, "notes.txt", b"two", max_bytes=MB)
    assert (first.name, second.name, again) == ("notes.txt", "notes-2.txt", second)
    assert first.read_bytes() == b"one"


@pytest.mark.parametrize(
    "name,data,reason",
    [("tool.exe", b"MZ", "'.exe' files cannot be indexed"), ("README", b"text", "without an extension"),
     ("empty.txt", b"", "empty"), ("big.txt", b"x" * (MB + 1), "over the upload limit of 1 MB")],
)  # fmt: skip
def test_refused_uploads_say_why_and_write_nothing(tmp_path, name, data, reason):
    with pytest.raises(UploadRefused, match=reason):
        save_upload(tmp_path / "uploads", name, data, max_bytes=MB)
    assert not (tmp_path / "uploads").exists()


def test_an_uploaded_file_is_indexed_and_its_folder_becomes_a_root(tmp_path):
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        outcome = index_upload(store, "facts.txt", b"The reactor was commissioned in 1987.", max_bytes=MB, embed=False)
        assert outcome.error is None and outcome.passages == 1
        assert [record.path for record in store.files()] == [str(outcome.path)]
        assert store.roots() == [os.path.realpath(tmp_path / "store" / UPLOADS_FOLDER)]
        assert servable_file(store, str(outcome.path)) == outcome.path.resolve()
        again = index_upload(store, "facts.txt", b"The reactor was commissioned in 1987.", max_bytes=MB, embed=False)
        assert again.unchanged and len(store.files()) == 1


def test_a_file_that_fails_to_convert_leaves_nothing_indexed_and_nothing_on_disk(tmp_path):
    corrupt = bad_corpus(tmp_path / "bad")["corrupt_pdf"].read_bytes()
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        outcome = index_upload(store, "scan.pdf", corrupt, max_bytes=MB, embed=False)
        assert outcome.error.startswith("corrupt PDF")
        assert store.files() == [] and store.count_documents() == 0
    assert list((tmp_path / "store" / UPLOADS_FOLDER).iterdir()) == []


# -- feedback ------------------------------------------------------------------------------------------


def judged(start: int = SECOND_1889, end: int = SECOND_1889 + 4, question: str = "When was it completed?") -> Judged:
    return Judged(question, "passage-1", TOWER, "tower.txt", "/docs/tower.txt", start, end)


def exported(feedback: FeedbackStore, tmp_path: Path) -> list[dict]:
    path = tmp_path / "feedback.json"
    feedback.export(path)
    load_squad(path)  # the reader's own loader accepts it
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == "v2.0"
    return [
        {"context": paragraph["context"], **qa}
        for article in data["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]  # fmt: skip


def test_an_approved_answer_exports_with_its_real_offset(tmp_path):
    feedback = FeedbackStore.beside(tmp_path)
    feedback.approve(judged())
    (example,) = exported(feedback, tmp_path)
    answer = example["answers"][0]
    assert answer == {"text": "1889", "answer_start": SECOND_1889} and not example["is_impossible"]
    assert example["context"][answer["answer_start"] :].startswith("1889 by Gustave")


def test_a_rejected_answer_with_a_correction_exports_the_corrected_span(tmp_path):
    feedback = FeedbackStore.beside(tmp_path)
    wrong = judged(TOWER.index("Gustave"), TOWER.index("Gustave") + 14)
    feedback.reject(wrong, correction=(SECOND_1889, SECOND_1889 + 4))
    (example,) = exported(feedback, tmp_path)
    assert example["answers"] == [{"text": "1889", "answer_start": SECOND_1889}]


def test_a_passage_that_does_not_answer_exports_as_unanswerable(tmp_path):
    feedback = FeedbackStore.beside(tmp_path)
    feedback.reject(judged(question="Who painted the tower?"), unanswerable=True)
    (example,) = exported(feedback, tmp_path)
    assert example["answers"] == [] and example["is_impossible"]


def test_a_bare_rejection_is_kept_and_counted_but_not_exported(tmp_path):
    feedback = FeedbackStore.beside(tmp_path)
    feedback.reject(judged())
    assert exported(feedback, tmp_path) == []
    assert feedback.counts() == {"approved": 0, "rejected": 1, "corrected": 0, "unanswerable": 0, "exported": 0}
    assert feedback.verdict(judged()).approved is False


def test_judging_again_replaces_the_verdict_and_clearing_forgets_it(tmp_path):
    feedback = FeedbackStore.beside(tmp_path)
    feedback.reject(judged())
    feedback.approve(judged())
    assert feedback.counts()["approved"] == 1 and feedback.counts()["rejected"] == 0
    feedback.forget(judged())
    assert feedback.verdict(judged()) is None and exported(feedback, tmp_path) == []


def test_feedback_lives_in_its_own_file_beside_the_store(tmp_path):
    with EmbeddedDocumentStore(tmp_path) as store:
        FeedbackStore.beside(store.path).approve(judged())
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == ["feedback.sqlite3", "store.sqlite3"]


@pytest.mark.parametrize("correction", [(5, 3), (0, len(TOWER) + 1), (-1, 2)])
def test_a_correction_must_be_a_span_of_the_passage(tmp_path, correction):
    with pytest.raises(ValueError, match="not a span"):
        FeedbackStore.beside(tmp_path).reject(judged(), correction=correction)


def test_a_correction_cannot_also_say_there_is_no_answer(tmp_path):
    with pytest.raises(ValueError, match="cannot also"):
        FeedbackStore.beside(tmp_path).reject(judged(), correction=(0, 3), unanswerable=True)


def test_a_typed_correction_is_found_at_every_occurrence_whatever_its_case_and_spacing():
    first = TOWER.index("1889")
    assert occurrences(TOWER, "1889") == [(first, first + 4), (SECOND_1889, SECOND_1889 + 4)]
    start = TOWER.index("Gustave")
    assert occurrences(TOWER, "  gustave   EIFFEL ") == [(start, start + len("Gustave Eiffel"))]
    assert occurrences(TOWER, "Napoleon") == [] and occurrences(TOWER, "   ") == []


def test_the_export_trains_a_reader(tmp_path, tiny_models, capsys):
    feedback = FeedbackStore.beside(tmp_path)
    feedback.approve(judged())
    feedback.reject(judged(question="Who painted it?"), unanswerable=True)
    data = tmp_path / "feedback.json"
    assert main(["ui", "--store", str(tmp_path), "--export-feedback", str(data)]) == 0
    assert "wrote 2 training examples" in capsys.readouterr().out
    output = tmp_path / "trained"
    code = main(["train", "--train", str(data), "--model", str(tiny_models["bert-uncased"]), "--output", str(output),
                 "--max-steps", "1", "--batch-size", "2", "--device", "cpu"])  # fmt: skip
    assert code == 0 and (output / "model.safetensors").is_file()


# -- downloads and folders -----------------------------------------------------------------------------


def indexed(store: EmbeddedDocumentStore, *paths: Path) -> None:
    index_paths(paths, store, embed=False, progress=False)


def test_a_file_under_an_indexed_root_may_be_downloaded(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Alpha text.", encoding="utf-8")
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        indexed(store, tmp_path / "docs")
        assert servable_file(store, str(tmp_path / "docs" / "a.txt")) == (tmp_path / "docs" / "a.txt").resolve()


def test_a_symlink_out_of_the_indexed_root_is_not_served(tmp_path):
    (tmp_path / "docs").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("Private notes.", encoding="utf-8")
    (tmp_path / "docs" / "link.txt").symlink_to(secret)
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        # indexed only because the operator asked to follow symlinks; even then it is never served
        index_paths([tmp_path / "docs"], store, embed=False, progress=False, follow_symlinks=True)
        assert store.file_record(str(tmp_path / "docs" / "link.txt")) is not None
        with pytest.raises(NotServable, match="outside the indexed folders"):
            servable_file(store, str(tmp_path / "docs" / "link.txt"))


def test_files_the_store_never_indexed_or_that_are_gone_are_not_served(tmp_path):
    (tmp_path / "docs").mkdir()
    kept, gone = tmp_path / "docs" / "kept.txt", tmp_path / "docs" / "gone.txt"
    kept.write_text("Kept.", encoding="utf-8")
    gone.write_text("Gone soon.", encoding="utf-8")
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        indexed(store, tmp_path / "docs")
        gone.unlink()
        with pytest.raises(NotServable, match="no record"):
            servable_file(store, str(tmp_path / "store" / "store.sqlite3"))
        with pytest.raises(NotServable, match="no longer there"):
            servable_file(store, str(gone))


def test_a_store_that_never_recorded_its_roots_serves_nothing_and_says_why(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Alpha.", encoding="utf-8")
    with EmbeddedDocumentStore(tmp_path / "store") as store:
        passage = Document(content="Alpha.", meta={"file_path": str(path)})
        store.replace_files([(FileRecord(str(path), "hash", 6, 0.0), [passage])])
        with pytest.raises(NotServable, match="index them again"):
            servable_file(store, str(path))


def test_folder_choices_are_every_folder_below_the_one_all_files_share():
    files = ["/d/hr/2024/a.pdf", "/d/hr/b.pdf", "/d/it/c.md"]
    assert folder_choices(files) == {"hr": "/d/hr", "hr/2024": "/d/hr/2024", "it": "/d/it"}
    assert folder_choices(["/d/a.pdf", "/d/b.pdf"]) == {}


# -- search settings -----------------------------------------------------------------------------------


def test_filters_combine_file_types_and_a_folder_with_its_subfolders():
    assert passage_filters() is None
    assert passage_filters(["pdf", "md"]) == {"field": "meta.file_type", "operator": "in", "value": ["pdf", "md"]}
    assert passage_filters(folder="/d/hr")["value"] == "/d/hr" + os.sep
    both = passage_filters(["pdf"], "/d/hr")
    assert both["operator"] == "AND" and len(both["conditions"]) == 2


def test_search_defaults_come_from_the_pipeline_yaml_then_the_model(tmp_path, tiny_models):
    reader = {"model": str(tiny_models["bert-uncased"]), "dtype": "float32"}
    pipeline = load_query_pipeline("bm25", tmp_path, reader)
    defaults = search_defaults(pipeline)
    assert (defaults.passages, defaults.options.top_k, defaults.no_answer_threshold) == (10, 5, 0.0)
    assert defaults.options == pipeline.reader.options
    in_yaml = load_query_pipeline("bm25", tmp_path, {**reader, "no_answer_threshold": -2.5})
    assert search_defaults(in_yaml).no_answer_threshold == -2.5
    started = search_defaults(pipeline, {"no_answer_threshold": 1.0, "max_answer_length": 4})
    assert started.threshold_source == "set when the UI was started" and started.no_answer_threshold == 1.0
    assert started.options.max_answer_length == 4, "every option given to `corpusqa ui` reaches the page"


# -- launching -----------------------------------------------------------------------------------------


def child_of(pid: int, timeout: float = 60) -> int:
    """The one child process of ``pid``, once it has started."""
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{pid}/task/{pid}/children")
    while not children.read_text().split():
        assert time.monotonic() < deadline, "no child process started"
        time.sleep(0.05)
    return int(children.read_text().split()[0])


def serving(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_corpusqa_ui_stops_its_streamlit_server_when_it_is_stopped(tmp_path, stop):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen([sys.executable, "-m", "corpusqa.pipelines.cli", "ui", "--store", str(tmp_path),
                           "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        streamlit = child_of(ui.pid)
        deadline = time.monotonic() + 120
        while not serving(port):
            assert ui.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        ui.send_signal(stop)
        ui.wait(timeout=60)
    finally:
        if ui.poll() is None:
            ui.kill()
    assert not Path(f"/proc/{streamlit}").exists(), "the server is gone with the command that started it"
    assert not serving(port)


def test_the_server_binds_to_this_machine_headless_and_sends_no_statistics(tmp_path):
    command = streamlit_command(UISettings(tmp_path))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    for option in ["--server.address=127.0.0.1", "--server.headless=true", "--browser.gatherUsageStats=false"]:
        assert option in command
    assert "--server.address=0.0.0.0" in streamlit_command(UISettings(tmp_path), host="0.0.0.0")


def test_settings_reach_the_page_through_the_environment(tmp_path):
    settings = UISettings(tmp_path, max_upload_mb=7, options={"no_answer_threshold": -1.5, "top_k": 2})
    assert UISettings.from_environment(settings.environment()) == UISettings(tmp_path.resolve(), 7, settings.options)


def test_corpusqa_ui_serves_on_localhost_unless_told(tmp_path, monkeypatch):
    served = []
    monkeypatch.setattr("corpusqa.ui.launch.serve", lambda *args: served.append(args) or 0)
    assert main(["ui", "--store", str(tmp_path)]) == 0
    assert main(["ui", "--store", str(tmp_path), "--host", "0.0.0.0", "--port", "9000", "--no-answer-threshold=0"]) == 0
    assert [(host, port) for _, host, port in served] == [("127.0.0.1", 8501), ("0.0.0.0", 9000)]
    assert served[0][0].options == {} and served[1][0].options == {"no_answer_threshold": 0.0}


def test_corpusqa_ui_on_an_unreachable_elasticsearch_store_is_one_line_before_any_page():
    done = subprocess.run(  # a process of its own: the client's retry logging reaches the real stderr
        [sys.executable, "-m", "corpusqa.pipelines.cli", "ui", "--store", "es://127.0.0.1:9/docs"],  # port 9: nothing
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("corpusqa ui: error:") and "127.0.0.1:9" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, "no retry tracebacks before the line"
