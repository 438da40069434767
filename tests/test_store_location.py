"""`--store` values: a folder is the embedded store; `es://HOST[:PORT]/INDEX` (ess:// for TLS) is the
Elasticsearch store (its URLs are specified in test_store_elasticsearch.py); anything else that looks like a
URL is refused, in one line."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from corpusqa.indexing.store import EmbeddedDocumentStore, StoreError
from corpusqa.indexing.store.location import open_store, store_config
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import load_query_pipeline
from corpusqa.ui.launch import UISettings


def test_a_folder_is_the_embedded_store_for_the_cli_and_the_query_pipelines(tmp_path):
    folder = tmp_path / "store"
    with open_store(folder) as store:
        assert isinstance(store, EmbeddedDocumentStore) and store.path == folder
    assert store_config(folder) == {
        "type": "corpusqa.indexing.store.embedded.EmbeddedDocumentStore",
        "init_parameters": {"path": str(folder)},
    }
    pipeline = load_query_pipeline("hybrid", folder)
    stores = [c.document_store for _, c in pipeline.retrieval.walk() if hasattr(c, "document_store")]
    assert len(stores) == 2 and all(s.path == folder for s in stores)


def test_a_reader_opening_a_store_folder_not_made_yet_is_refused_and_nothing_is_made(tmp_path):
    folder = tmp_path / "not-yet"
    with pytest.raises(StoreError) as raised:
        open_store(folder, create=False)
    assert str(raised.value) == f"no store at {folder}: index documents first (corpusqa index PATH --store {folder})"
    assert not folder.exists()
    with open_store(folder) as store:  # writers make it
        assert store.count_documents() == 0
    with open_store(folder, create=False) as store:
        assert isinstance(store, EmbeddedDocumentStore)


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


@pytest.mark.parametrize(("command", "launcher"), [("ui", "corpusqa.ui.launch.serve"), ("serve", "corpusqa.server.app.serve")])
def test_the_search_page_and_the_server_keep_uploads_beside_an_elasticsearch_store_in_a_data_folder(
    tmp_path, monkeypatch, command, launcher
):
    started = []
    monkeypatch.setattr(launcher, lambda settings, host, port: started.append(settings) or 0)
    # `corpusqa ui` reaches a server store before starting the page; there is no server here
    opened = []
    monkeypatch.setattr("corpusqa.indexing.store.location.open_store",
                        lambda location, create=True: opened.append(create) or SimpleNamespace(close=lambda: None))
    monkeypatch.delenv("CORPUSQA_TOKEN", raising=False)
    assert main([command, "--store", "es://localhost:9200/docs"]) == 0
    assert main([command, "--store", "es://localhost:9200/docs", "--data-dir", str(tmp_path / "data")]) == 0
    assert main([command, "--store", str(tmp_path / "store")]) == 0
    assert [(s.store, s.folder) for s in started] == [
        ("es://localhost:9200/docs", Path(".corpusqa-data")),
        ("es://localhost:9200/docs", tmp_path / "data"),
        (tmp_path / "store", tmp_path / "store"),
    ]
    if command == "ui":  # the page reads its settings from the environment the launcher gives it
        assert opened == [False, False], "the page reads the server store: it never creates the index"
        again = UISettings.from_environment(started[1].environment())
        assert (again.store, again.folder) == ("es://localhost:9200/docs", (tmp_path / "data").resolve())
