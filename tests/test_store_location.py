"""`--store` values: a folder is the embedded store; `es://HOST[:PORT]/INDEX` names the Elasticsearch store,
recognised but not available yet; anything else that looks like a URL is refused, in one line."""

import pytest

from corpusqa.indexing.store import EmbeddedDocumentStore
from corpusqa.indexing.store.location import open_store, store_config
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import load_query_pipeline


def test_a_folder_is_the_embedded_store_for_the_cli_and_the_query_pipelines(tmp_path):
    folder = tmp_path / "store"
    with open_store(folder) as store:
        assert isinstance(store, EmbeddedDocumentStore) and store.path == folder
    assert store_config(folder) == {
        "type": "corpusqa.indexing.store.EmbeddedDocumentStore",
        "init_parameters": {"path": str(folder)},
    }
    pipeline = load_query_pipeline("hybrid", folder)
    stores = [c.document_store for _, c in pipeline.retrieval.walk() if hasattr(c, "document_store")]
    assert len(stores) == 2 and all(s.path == folder for s in stores)


@pytest.mark.parametrize(
    ("location", "parsed"),
    [
        ("es://localhost:9200/docs", "index 'docs' at localhost:9200"),
        ("es://search.lan/passages", "index 'passages' at search.lan:9200"),
    ],
)
def test_an_elasticsearch_url_is_parsed_and_said_to_be_not_available_yet(location, parsed):
    for face in (open_store, store_config, lambda where: load_query_pipeline("bm25", where)):
        with pytest.raises(ValueError, match="the Elasticsearch store .* is not available yet") as raised:
            face(location)
        assert location in str(raised.value) and parsed in str(raised.value)


@pytest.mark.parametrize("location", ["es://", "es://host", "es:///docs", "es://host:port/docs", "es://host/a/b"])
def test_a_malformed_elasticsearch_url_is_refused_with_the_expected_form(location):
    with pytest.raises(ValueError, match=r"es://HOST\[:PORT\]/INDEX") as raised:
        open_store(location)
    assert location in str(raised.value)


def test_an_unknown_scheme_is_refused_not_taken_for_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown scheme 's3'"):
        open_store("s3://bucket/corpus")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["index", "."], ["ask", "Who?"], ["stats"]])
def test_every_store_command_reports_an_unusable_store_in_one_line_and_creates_nothing(
    tmp_path, monkeypatch, capsys, command
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "note.txt").write_text("A file to index.", encoding="utf-8")
    code = main([*command, "--store", "es://localhost:9200/docs"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"corpusqa {command[0]}: error: store es://localhost:9200/docs: the Elasticsearch store")
    assert [path.name for path in tmp_path.iterdir()] == ["note.txt"]


def test_the_search_page_refuses_a_store_url_in_one_line(capsys):
    assert main(["ui", "--store", "es://localhost:9200/docs"]) == 2
    assert capsys.readouterr().err == "corpusqa ui: error: the search page needs a store folder: it keeps uploads and feedback in it\n"
