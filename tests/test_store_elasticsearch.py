"""The Elasticsearch store without a server: the URLs and index names it accepts, the credentials it takes
from the environment, and the requests, mappings and queries it builds, read from the calls it makes on a
recording client. These say what would be sent, not what a server does with it: that is the store
contract's suite (test_store_contract.py), run against a real server named by $CORPUSQA_TEST_ES_URL.

Two of the failures are real ones: an unreachable host is a closed port on this machine.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest.mock import MagicMock

import elastic_transport
import pytest
from corpusqa.indexing.store import EmbeddedDocumentStore, RefusedFiles, StoreError
from corpusqa.indexing.store.es import ElasticsearchStore
from corpusqa.indexing.store.es import bodies, responses
from corpusqa.indexing.store.es import store as es_store
from corpusqa.indexing.store.es.endpoint import Endpoint, client_options
from corpusqa.indexing.store.es.names import index_name_problem
from corpusqa.indexing.store.location import open_store, store_config
from corpusqa.pipelines.cli import main
from corpusqa.pipelines.query import load_query_pipeline
from corpusqa.pipelines.store_checks import store_problem
from elasticsearch import AuthenticationException, AuthorizationException
from haystack import Document
from haystack.errors import FilterError
from store_samples import passage, record, unit

SECRET = "s3cret-never-shown"


def api_error(kind, status: int, reason: str = "no"):
    meta = elastic_transport.ApiResponseMeta(status, "1.1", elastic_transport.HttpHeaders(), 0.0,
                                             elastic_transport.NodeConfig("http", "localhost", 9200))  # fmt: skip
    return kind(reason, meta, {"error": {"type": "security_exception", "reason": reason}})


class Server:
    """What a recording client answers: which indexes exist, with which mappings."""

    def __init__(self, mappings: dict[str, dict] | None = None):
        self.mappings = dict(mappings or {})


@pytest.fixture
def server(monkeypatch):
    """A recording client in place of the Elasticsearch client (the store's and elasticsearch-haystack's):
    ``server.client.mock_calls`` is every call the store made, bulk writes included, in order."""
    state = Server()
    client = MagicMock(name="client")
    client.options.return_value = client
    client.info.return_value = {"version": {"number": "8.19.0"}}
    client.indices.exists.side_effect = lambda index: index in state.mappings

    def create(index, settings, mappings):
        state.mappings[index] = mappings
        return SimpleNamespace(meta=SimpleNamespace(status=200), body={})

    client.indices.create.side_effect = create
    client.indices.get_mapping.side_effect = lambda index: {index: {"mappings": state.mappings[index]}}
    client.delete_by_query.return_value = {"deleted": 0}
    constructed = []

    def construct(**options):
        constructed.append(options)
        return client

    def streaming_bulk(es, actions, **options):
        """Each action answered as written, in the shape of a bulk response's items."""
        actions = list(actions)
        client.bulk_write(actions=actions, **options)
        return [(True, written(action)) for action in actions]

    monkeypatch.setattr(es_store, "Elasticsearch", construct)
    monkeypatch.setattr(es_store.helpers, "streaming_bulk", streaming_bulk)
    monkeypatch.setattr("haystack_integrations.document_stores.elasticsearch.document_store.Elasticsearch",
                        lambda *args, **kwargs: client)  # fmt: skip
    state.client, state.constructed = client, constructed
    for name in ("CORPUSQA_ES_API_KEY", "CORPUSQA_ES_USER", "CORPUSQA_ES_PASSWORD", "CORPUSQA_ES_CA_CERTS"):
        monkeypatch.delenv(name, raising=False)
    return state


def written(action: dict) -> dict:
    """A bulk response's item for ``action`` done: an index action creating a document, a delete deleting one."""
    operation = action.get("_op_type", "index")
    done = {"index": (201, "created"), "delete": (200, "deleted")}[operation]
    return {operation: {"_index": action["_index"], "_id": action["_id"], "_version": 1, "result": done[1],
                        "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": done[0]}}  # fmt: skip


def calls(client, name: str) -> list:
    return [call for call in client.mock_calls if call[0] == name]


def names(client) -> list[str]:
    """The calls made, but for reading the mapping and choosing per-request options."""
    return [call[0] for call in client.mock_calls if call[0] not in ("options", "indices.get_mapping")]


# -- where a store is --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "url", "index", "canonical"),
    [
        ("es://localhost:9200/docs", "http://localhost:9200", "docs", "es://localhost:9200/docs"),
        ("es://search.lan/passages", "http://search.lan:9200", "passages", "es://search.lan:9200/passages"),
        ("http://search.lan:9201/docs", "http://search.lan:9201", "docs", "es://search.lan:9201/docs"),
        ("ess://search.lan/docs", "https://search.lan:9200", "docs", "ess://search.lan:9200/docs"),
        ("https://10.0.0.7:443/docs?shards=3&replicas=0", "https://10.0.0.7:443", "docs",
         "ess://10.0.0.7:443/docs?shards=3&replicas=0"),
        ("es://[::1]:9200/docs", "http://[::1]:9200", "docs", "es://[::1]:9200/docs"),
    ],
)
def test_elasticsearch_urls_name_a_node_and_an_index(location, url, index, canonical):
    endpoint = Endpoint.parse(location)
    assert (endpoint.url, endpoint.index, endpoint.location) == (url, index, canonical)
    assert Endpoint.parse(endpoint.location) == endpoint
    assert store_config(location) == {"type": "corpusqa.indexing.store.es.store.ElasticsearchStore",
                                      "init_parameters": {"url": canonical}}  # fmt: skip


@pytest.mark.parametrize(
    ("location", "says"),
    [
        ("es://", "es://HOST[:PORT]/INDEX"),
        ("es://host", "es://HOST[:PORT]/INDEX"),
        ("es:///docs", "es://HOST[:PORT]/INDEX"),
        ("es://host/a/b", "es://HOST[:PORT]/INDEX"),
        ("es://host:port/docs", "has no valid port"),
        ("es://host/docs?shard=2", "unknown setting 'shard'"),
        ("es://host/docs?shards=two", "shards must be a whole number"),
        ("es://host/docs?shards=0", "shards must be at least 1"),
        ("es://host/Docs", "index names are lowercase"),
        ("es://host/my%20docs", "cannot hold ' '"),
        ("es://host/_docs", "cannot start with '_'"),
        ("es://host/.security", "cannot start with '.'"),
        ("es://host/a*b", "cannot hold '*'"),
        ("es://host/" + "x" * 250, "at most 249 bytes"),
    ],
)
def test_a_location_elasticsearch_would_refuse_is_one_line_before_any_connection(server, location, says):
    with pytest.raises(ValueError) as raised:
        open_store(location)
    assert says in str(raised.value) and "\n" not in str(raised.value)
    assert server.constructed == []


def test_credentials_in_the_url_are_refused_without_being_repeated(server):
    with pytest.raises(ValueError, match="credentials do not go in the URL") as raised:
        open_store(f"es://elastic:{SECRET}@localhost:9200/docs")
    assert SECRET not in str(raised.value) and "es://***@localhost:9200/docs" in str(raised.value)
    with pytest.raises(ValueError, match="unknown scheme") as raised:
        open_store(f"s3://user:{SECRET}@bucket/corpus")
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("docs", None), ("corpus-2026.v1", None), ("a+b", None), ("DOCS", "lowercase"), ("a,b", "','"),
     ("a#b", "'#'"), ("a:b", "':'"), ('a"b', "'\"'"), ("a|b", "'|'"), ("a\\b", "'\\\\'"), ("-docs", "'-'"),
     ("+docs", "'+'"), ("..", "'.'"), ("", "empty")],
)
def test_index_names_follow_elasticsearchs_rules(name, problem):
    found = index_name_problem(name)
    assert (found is None) if problem is None else (problem in found)


# -- credentials ---------------------------------------------------------------------------------------


def test_credentials_come_from_the_environment_an_api_key_first(tmp_path):
    endpoint = Endpoint.parse("ess://search.lan/docs")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    both = {"CORPUSQA_ES_API_KEY": "key", "CORPUSQA_ES_USER": "u", "CORPUSQA_ES_PASSWORD": "p",
            "CORPUSQA_ES_CA_CERTS": str(ca)}  # fmt: skip
    options = client_options(endpoint, both)
    assert (options["api_key"], options["ca_certs"], "basic_auth" in options) == ("key", str(ca), False)
    assert options["hosts"] == ["https://search.lan:9200"] and options["retry_on_timeout"] is True
    assert client_options(endpoint, {"CORPUSQA_ES_USER": "u", "CORPUSQA_ES_PASSWORD": "p"})["basic_auth"] == ("u", "p")
    assert "api_key" not in client_options(endpoint, {}) and "basic_auth" not in client_options(endpoint, {})


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"CORPUSQA_ES_USER": "elastic"}, "CORPUSQA_ES_PASSWORD is not set"),
        ({"CORPUSQA_ES_PASSWORD": SECRET}, "CORPUSQA_ES_USER is not set"),
        ({"CORPUSQA_ES_CA_CERTS": "/no/such/ca.pem"}, "names /no/such/ca.pem, which is not a file"),
    ],
)
def test_half_given_credentials_are_one_line_naming_the_variable(environ, says):
    with pytest.raises(StoreError) as raised:
        client_options(Endpoint.parse("ess://search.lan/docs"), environ)
    assert says in str(raised.value) and SECRET not in str(raised.value)


def test_a_ca_bundle_for_a_plain_http_store_is_refused(tmp_path):
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    with pytest.raises(StoreError, match="speaks plain HTTP: give ess://"):
        client_options(Endpoint.parse("es://search.lan/docs"), {"CORPUSQA_ES_CA_CERTS": str(tmp_path / "ca.pem")})


def test_the_stores_serialised_form_holds_no_credential(server, monkeypatch):
    monkeypatch.setenv("CORPUSQA_ES_USER", "elastic")
    monkeypatch.setenv("CORPUSQA_ES_PASSWORD", SECRET)
    store = ElasticsearchStore("es://localhost:9200/docs", create=True)
    assert server.constructed[0]["basic_auth"] == ("elastic", SECRET)
    data = store.to_dict()
    assert data == {"type": "corpusqa.indexing.store.es.store.ElasticsearchStore",
                    "init_parameters": {"url": "es://localhost:9200/docs", "embedding_dim": None}}  # fmt: skip
    assert SECRET not in json.dumps(data) and SECRET not in repr(store)
    again = ElasticsearchStore.from_dict(data)
    assert again.location == "es://localhost:9200/docs" and not again.create, "a loaded store never creates"


# -- opening -------------------------------------------------------------------------------------------


def test_opening_creates_the_passage_index_with_corpusqas_analysis_and_the_file_index(server):
    ElasticsearchStore("es://localhost:9200/docs?shards=2&replicas=0", create=True)
    assert names(server.client)[:5] == ["info", "indices.exists", "indices.create", "indices.exists", "indices.create"]
    passages, files = (call.kwargs for call in calls(server.client, "indices.create"))
    assert passages["index"] == "docs" and files["index"] == "docs-files"
    settings = passages["settings"]
    assert settings["analysis"]["analyzer"]["corpusqa_text"] == {"type": "standard", "stopwords": "_english_"}
    assert settings["similarity"]["default"] == {"type": "BM25", "k1": 1.5, "b": 0.75}
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (2, 0)
    fields = passages["mappings"]["properties"]
    assert fields["content"] == {"type": "text", "analyzer": "corpusqa_text"}
    assert {fields[name]["type"] for name in ("id", "file_path", "file_type", "title", "source_id")} == {"keyword"}
    assert "embedding" not in fields, "the vector field waits for the first embedding's dimension"
    assert files["mappings"]["dynamic"] == "strict" and files["settings"]["number_of_shards"] == 1


def test_the_embedders_dimension_maps_the_vector_field_for_cosine_knn(server):
    ElasticsearchStore("es://localhost:9200/docs", embedding_dim=384, create=True)
    vector = calls(server.client, "indices.create")[0].kwargs["mappings"]["properties"]["embedding"]
    assert vector == {"type": "dense_vector", "dims": 384, "index": True, "similarity": "cosine"}


@pytest.mark.parametrize(
    ("mappings", "says"),
    [
        ({"properties": {"content": {"type": "text"}, "embedding": {"type": "dense_vector"}}},
         "it was not created by corpusqa"),
        (bodies.passage_mappings(None) | {"properties": {**bodies.passage_mappings(None)["properties"],
                                                              "file_path": {"type": "text"}}},
         "its field 'file_path' has type 'text', not 'keyword'"),
    ],
)
def test_an_existing_index_with_another_mapping_is_refused_before_anything_is_written(server, mappings, says):
    server.mappings["docs"] = mappings
    with pytest.raises(StoreError) as raised:
        ElasticsearchStore("es://localhost:9200/docs")
    message = str(raised.value)
    assert message.startswith("store es://localhost:9200/docs: index 'docs' exists with another mapping")
    assert says in message and "\n" not in message
    assert not {"indices.create", "indices.put_mapping", "bulk_write", "delete_by_query"} & set(names(server.client))


def test_an_existing_index_of_another_dimension_is_refused(server):
    server.mappings |= {"docs": bodies.passage_mappings(768), "docs-files": bodies.files_mappings()}
    with pytest.raises(StoreError, match="index 'docs' holds 768-d embeddings, not 384-d"):
        ElasticsearchStore("es://localhost:9200/docs", embedding_dim=384)
    store = ElasticsearchStore("es://localhost:9200/docs")
    with pytest.raises(ValueError, match=r"shape \(384,\), not \(768,\)"):
        store.write_documents([Document(content="x", embedding=[0.1] * 384)])
    assert "bulk_write" not in names(server.client)


def test_an_index_made_but_whose_companion_cannot_be_is_removed_again(server):
    def create(index, settings, mappings):
        if index == "docs-files":
            raise api_error(AuthorizationException, 403, "action [indices:admin/create] is unauthorized")
        server.mappings[index] = mappings
        return SimpleNamespace(meta=SimpleNamespace(status=200), body={})

    server.client.indices.create.side_effect = create
    with pytest.raises(StoreError, match=r"lack a privilege this needs on index 'docs' \(403: security_exception"):
        ElasticsearchStore("es://localhost:9200/docs", create=True)
    assert calls(server.client, "indices.delete")[0].kwargs == {"index": "docs"}


def test_an_unreachable_host_is_one_line_and_nothing_is_made_here(tmp_path, monkeypatch, capsys):
    """A real connection, refused: nothing listens on port 9 of this machine."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "note.txt").write_text("A file to index.", encoding="utf-8")
    for command in (["index", "."], ["stats"], ["store", "check"]):
        assert main([*command, "--store", "es://127.0.0.1:9/docs", *(["--quiet"] if command[0] == "index" else [])]) == 2
        err = capsys.readouterr().err
        assert err == (f"corpusqa {command[0]}: error: store es://127.0.0.1:9/docs: cannot reach Elasticsearch at "
                       "http://127.0.0.1:9: is it running, and is the scheme right (ess:// for TLS)?\n")  # fmt: skip
    assert [path.name for path in tmp_path.iterdir()] == ["note.txt"]


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"CORPUSQA_ES_USER": "elastic", "CORPUSQA_ES_PASSWORD": SECRET},
         "Elasticsearch refused the credentials (401): check CORPUSQA_ES_API_KEY, or CORPUSQA_ES_USER and "
         "CORPUSQA_ES_PASSWORD"),
        ({}, "Elasticsearch asks for credentials: set CORPUSQA_ES_API_KEY, or CORPUSQA_ES_USER and CORPUSQA_ES_PASSWORD"),
    ],
)
def test_refused_credentials_are_one_line_that_never_shows_them(server, monkeypatch, environ, says):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    server.client.info.side_effect = api_error(AuthenticationException, 401, "unable to authenticate user [elastic]")
    with pytest.raises(StoreError) as raised:
        ElasticsearchStore("es://localhost:9200/docs")
    assert str(raised.value) == f"store es://localhost:9200/docs: {says}"
    assert "indices.exists" not in names(server.client)


def test_a_certificate_that_does_not_verify_says_which_variable_to_set(server):
    server.client.info.side_effect = elastic_transport.TlsError("certificate verify failed")
    with pytest.raises(StoreError, match="does not verify; set CORPUSQA_ES_CA_CERTS to the CA bundle"):
        ElasticsearchStore("ess://localhost/docs")


# -- writing -------------------------------------------------------------------------------------------


@pytest.fixture
def store(server):
    return ElasticsearchStore("es://localhost:9200/docs", create=True)


def test_replace_files_writes_passages_then_drops_stale_ones_then_the_record(server, store):
    """The order that leaves a file as it was, or whole, wherever a run stops (see the store's module)."""
    server.client.reset_mock()
    documents = [passage("/d/a.txt", "One.", 0), passage("/d/a.txt", "Two.", 1)]
    store.replace_files([(record("/d/a.txt", "h2"), documents)])
    assert names(server.client) == ["indices.put_mapping", "bulk_write", "delete_by_query", "bulk_write",
                                    "indices.refresh"]  # fmt: skip
    assert calls(server.client, "indices.put_mapping")[0].kwargs == {
        "index": "docs", "properties": {"embedding": bodies.vector_mapping(8)}}
    written, recorded = (call.kwargs for call in calls(server.client, "bulk_write"))
    assert [(a["_index"], a["_id"]) for a in written["actions"]] == [("docs", d.id) for d in documents]
    source = written["actions"][0]["_source"]
    assert source == {"id": documents[0].id, "content": "One.", "file_path": "/d/a.txt", "file_type": "txt",
                      "embedding": unit(0)}  # fmt: skip
    assert written["max_retries"] > 0 and written["initial_backoff"] > 0 and not written["raise_on_error"]
    stale = calls(server.client, "delete_by_query")[0].kwargs
    assert stale["query"] == {"bool": {"filter": [{"terms": {"file_path": ["/d/a.txt"]}}],
                                       "must_not": [{"ids": {"values": [d.id for d in documents]}}]}}  # fmt: skip
    [action] = recorded["actions"]
    assert action["_index"] == "docs-files" and action["_id"] == bodies.record_id("file", "/d/a.txt")
    assert {k: action["_source"][k] for k in ("kind", "path", "content_hash", "passages")} == {
        "kind": "file", "path": "/d/a.txt", "content_hash": "h2", "passages": 2}


def test_inside_bulk_nothing_waits_to_be_searchable_until_the_end(server, store):
    with store.bulk():
        store.replace_files([(record("/d/a.txt"), [passage("/d/a.txt", "One.")])])
        store.remove_files(["/d/b.txt"])
        assert "indices.refresh" not in names(server.client)
    assert names(server.client)[-1] == "indices.refresh"


def parse_error(document_id: str) -> dict:
    """Elasticsearch 8's item for a document whose field does not fit the mapping (as a bulk response has it)."""
    return {"_index": "docs", "_id": document_id, "status": 400, "error": {
        "type": "document_parsing_exception",
        "reason": f"[1:79] failed to parse field [page_number] of type [long] in document with id '{document_id}'. "
                  "Preview of field's value: 'iv'",
        "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "iv"'}}}  # fmt: skip


#: A bulk response's items as Elasticsearch 8 answers them: created, overwritten, refused by the mapping, a
#: term too long for Lucene, turned away while busy (after the client's retries), a delete of what is gone.
BULK_ITEMS = [
    {"index": {"_index": "docs", "_id": "a1", "_version": 1, "result": "created", "_seq_no": 0, "_primary_term": 1,
               "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": 201}},
    {"index": {"_index": "docs", "_id": "a2", "_version": 2, "result": "updated", "_seq_no": 1, "_primary_term": 1,
               "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": 200}},
    {"index": parse_error("b1")},
    {"index": {"_index": "docs", "_id": "c1", "status": 400, "error": {
        "type": "illegal_argument_exception",
        "reason": 'Document contains at least one immense term in field="title" (whose UTF8 encoding is longer than '
                  "the max length 32766), all of which were skipped. Please correct the analyzer to not produce such "
                  "terms. The prefix of the first immense term is: '[65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, "
                  "65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65]...', original message: "
                  "bytes can be at most 32766 in length; got 40000",
        "caused_by": {"type": "max_bytes_length_exceeded_exception",
                      "reason": "bytes can be at most 32766 in length; got 40000"}}}},
    {"index": {"_index": "docs", "_id": "d1", "status": 429, "error": {
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                  "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=52428800, "
                  "max_coordinating_and_primary_bytes=53687091]"}}},
    {"delete": {"_index": "docs-files", "_id": "file-e1", "_version": 1, "result": "not_found",
                "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": 404}},
]  # fmt: skip


def test_a_bulk_response_is_read_item_by_item():
    outcome = responses.bulk_outcome(BULK_ITEMS, ignore_status=(404,))
    assert outcome.created == {"a1"}, "an overwritten document was there before the write"
    assert list(outcome.refused) == ["b1", "c1", "d1"]
    assert outcome.refused["b1"] == ("document_parsing_exception: [1:79] failed to parse field [page_number] of type "
                                     "[long] in document with id 'b1'. Preview of field's value: 'iv'")  # fmt: skip
    assert outcome.refused["c1"].startswith('illegal_argument_exception: Document contains at least one immense term '
                                            'in field="title"')  # fmt: skip
    assert len(outcome.refused["c1"]) == responses.REASON_CHARACTERS and outcome.refused["c1"].endswith("…")
    assert outcome.refused["d1"].startswith("es_rejected_execution_exception: rejected execution")
    assert "file-e1" in responses.bulk_outcome(BULK_ITEMS).refused, "a 404 is a failure unless it is ignored"
    owners = {"a1": "/d/a.txt", "a2": "/d/a.txt", "b1": "/d/b.pdf", "c1": "/d/c.md", "d1": "/d/c.md"}
    assert responses.refused_files(owners, outcome) == {
        "/d/b.pdf": f"Elasticsearch refused passage b1: {outcome.refused['b1']}",
        "/d/c.md": f"Elasticsearch refused passage c1: {outcome.refused['c1']} (and 1 more of its passages)",
    }


def answering(server, *answers):
    """A bulk helper that answers its first calls with ``answers`` (bulk response items, one per action sent)
    and any later call as written; every call is recorded as ``bulk_write``."""
    pending = list(answers)

    def streaming_bulk(es, actions, **options):
        actions = list(actions)
        server.client.bulk_write(actions=actions, **options)
        items = pending.pop(0) if pending else [written(action) for action in actions]
        assert len(items) == len(actions)
        return [(200 <= next(iter(item.values()))["status"] < 300, item) for item in items]

    return streaming_bulk


def test_a_file_with_a_passage_elasticsearch_refuses_is_put_back_as_it_was_and_named(server, store, monkeypatch):
    """The other files are written; the refused file keeps its old passages and record (none here), loses the
    passages this write added, and is named with the passage and Elasticsearch's reason in one line."""
    a = [passage("/d/a.txt", "One.", 0), passage("/d/a.txt", "Two.", 1)]
    b = [passage("/d/b.pdf", "Three.", 2), passage("/d/b.pdf", "Four.", 3, page_number="iv"),
         passage("/d/b.pdf", "Five.", 4)]
    answer = [written({"_index": "docs", "_id": d.id}) for d in a + b[:1]]
    answer += [{"index": parse_error(b[1].id)}]
    answer += [{"index": {"_index": "docs", "_id": b[2].id, "_version": 2, "result": "updated", "status": 200}}]
    monkeypatch.setattr(es_store.helpers, "streaming_bulk", answering(server, answer))
    server.client.reset_mock()
    with pytest.raises(RefusedFiles) as raised:
        store.replace_files([(record("/d/a.txt"), a), (record("/d/b.pdf"), b)])
    reason = (f"Elasticsearch refused passage {b[1].id}: document_parsing_exception: [1:79] failed to parse field "
              f"[page_number] of type [long] in document with id '{b[1].id}'. Preview of field's value: 'iv'")
    assert raised.value.refused == {"/d/b.pdf": reason}
    assert str(raised.value) == f"store es://localhost:9200/docs: /d/b.pdf: {reason}"
    assert isinstance(raised.value, StoreError) and "\n" not in str(raised.value)
    assert names(server.client) == ["indices.put_mapping", "bulk_write", "bulk_write", "delete_by_query",
                                    "bulk_write", "indices.refresh"]  # fmt: skip
    passages, undone, records = (call.kwargs["actions"] for call in calls(server.client, "bulk_write"))
    assert [action["_id"] for action in passages] == [d.id for d in a + b]
    # only what this write created: the passage it overwrote (same id, same text) was there before
    assert undone == [{"_op_type": "delete", "_index": "docs", "_id": b[0].id}]
    assert calls(server.client, "delete_by_query")[0].kwargs["query"] == bodies.stale_passages(["/d/a.txt"],
                                                                                               [d.id for d in a])
    assert [action["_source"]["path"] for action in records] == ["/d/a.txt"], "no record for the refused file"


def test_a_batch_whose_every_file_is_refused_writes_no_record(server, store, monkeypatch):
    b = [passage("/d/b.pdf", "Four.", 3, page_number="iv")]
    monkeypatch.setattr(es_store.helpers, "streaming_bulk", answering(server, [{"index": parse_error(b[0].id)}]))
    server.client.reset_mock()
    with pytest.raises(RefusedFiles, match=r"^store es://localhost:9200/docs: /d/b.pdf: Elasticsearch refused passage"):
        store.replace_files([(record("/d/b.pdf"), b)])
    assert names(server.client) == ["indices.put_mapping", "bulk_write", "indices.refresh"]


def test_other_writes_elasticsearch_refuses_are_one_line_and_a_delete_of_what_is_gone_is_none(server, store,
                                                                                             monkeypatch):
    gone = {"delete": {"_index": "docs-files", "_id": bodies.record_id("file", "/d/never.txt"), "_version": 1,
                       "result": "not_found", "status": 404}}  # fmt: skip
    kept = {"delete": {"_index": "docs-files", "_id": bodies.record_id("file", "/d/a.txt"), "status": 403,
                       "error": {"type": "security_exception", "reason": "action [indices:data/write/bulk[s]] is "
                                 "unauthorized for API key id [k1] of user [indexer] on indices [docs-files]"}}}  # fmt: skip
    monkeypatch.setattr(es_store.helpers, "streaming_bulk", answering(server, [gone], [gone, kept]))
    assert store.remove_files(["/d/never.txt"]) == 0
    with pytest.raises(StoreError) as raised:
        store.remove_files(["/d/never.txt", "/d/a.txt"])
    assert str(raised.value) == ("store es://localhost:9200/docs: Elasticsearch refused 1 of 2 writes, the first "
                                 f"(id {bodies.record_id('file', '/d/a.txt')}): security_exception: action "
                                 "[indices:data/write/bulk[s]] is unauthorized for API key id [k1] of user [indexer] "
                                 "on indices [docs-files]")  # fmt: skip


def test_zero_vectors_and_mixed_dimensions_are_refused_before_anything_is_sent(server, store):
    server.client.reset_mock()
    with pytest.raises(ValueError, match="zero length"):
        store.write_documents([Document(content="a", embedding=[0.0] * 8)])
    with pytest.raises(ValueError, match="embedding"):
        store.replace_files([(record("a"), [passage("a", "x", 0)]),
                             (record("b"), [Document(content="y", meta={"file_path": "b"}, embedding=[1.0])])])
    assert not {"indices.put_mapping", "bulk_write", "delete_by_query"} & set(names(server.client))


def test_remove_files_drops_passages_before_records(server, store):
    server.client.delete_by_query.return_value = {"deleted": 3}
    server.client.reset_mock()
    assert store.remove_files(["/d/a.txt", "/d/b.txt"]) == 3
    assert names(server.client) == ["delete_by_query", "bulk_write", "indices.refresh"]
    assert calls(server.client, "delete_by_query")[0].kwargs["query"] == {"terms": {"file_path": ["/d/a.txt", "/d/b.txt"]}}
    deletions = calls(server.client, "bulk_write")[0].kwargs
    assert [a["_op_type"] for a in deletions["actions"]] == ["delete", "delete"] and deletions["ignore_status"] == 404


# -- stats ---------------------------------------------------------------------------------------------


def indices_stats(*sizes: tuple[str, int]) -> dict:
    """An indices stats answer (``metric=store``) as Elasticsearch 8 gives it: keyed by concrete index names."""
    def store(size):
        return {"store": {"size_in_bytes": size, "total_data_set_size_in_bytes": size, "reserved_in_bytes": 0}}

    total = sum(size for _, size in sizes)
    return {"_shards": {"total": 2 * len(sizes), "successful": len(sizes), "failed": 0},
            "_all": {"primaries": store(total), "total": store(total)},
            "indices": {name: {"uuid": f"u-{name}", "health": "yellow", "status": "open", "primaries": store(size),
                               "total": store(size)} for name, size in sizes}}  # fmt: skip


def test_primary_sizes_are_read_under_the_concrete_indexes_an_alias_stands_for():
    assert responses.primary_bytes(indices_stats(("docs", 4096))) == 4096
    assert responses.primary_bytes(indices_stats(("docs-2026-01", 5120))) == 5120
    assert responses.primary_bytes(indices_stats(("docs-2026-01", 5120), ("docs-2026-02", 100))) == 5220


def test_stats_of_a_store_whose_index_is_an_alias(server):
    """Teams reindex behind aliases: ``docs`` and ``docs-files`` stand for ``docs-2026-01`` and its records, and
    Elasticsearch answers index stats and mappings under those names."""
    concrete = {"docs": "docs-2026-01", "docs-files": "docs-2026-01-files"}
    server.mappings |= {"docs": bodies.passage_mappings(8), "docs-files": bodies.files_mappings()}
    server.client.indices.get_mapping.side_effect = lambda index: {concrete[index]: {"mappings": server.mappings[index]}}
    store = ElasticsearchStore("es://localhost:9200/docs")
    passages = {
        "took": 3, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 3, "relation": "eq"}, "max_score": None, "hits": []},
        "aggregations": {
            "sources": {"value": 2}, "unsourced": {"doc_count": 0}, "embedded": {"doc_count": 3},
            "file_types": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
                {"key": "txt", "doc_count": 2, "files": {"value": 1}},
                {"key": "pdf", "doc_count": 1, "files": {"value": 1}}]},
        },
    }  # fmt: skip
    files = {"took": 1, "timed_out": False, "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": None,
                                                      "hits": []},
             "aggregations": {"last_indexed_at": {"value": 1767225600.5}}}  # fmt: skip
    server.client.search.side_effect = lambda index, **body: {"docs": passages, "docs-files": files}[index]
    sizes = {"docs": indices_stats(("docs-2026-01", 5120)), "docs-files": indices_stats(("docs-2026-01-files", 230))}
    server.client.indices.stats.side_effect = lambda index, metric: sizes[index]
    stats = store.stats()
    assert stats["disk_bytes"] == {"passages": 5120, "files": 230}
    assert (stats["passages"], stats["documents"], stats["files"], stats["embedding_dim"]) == (3, 2, 2, 8)
    assert stats["file_types"] == {"pdf": {"files": 1, "passages": 1}, "txt": {"files": 1, "passages": 2}}
    assert (stats["last_indexed_at"], stats["dense_passages"], stats["dense_index"]) == (1767225600.5, 3, "hnsw")
    assert [call.kwargs for call in calls(server.client, "indices.stats")] == [
        {"index": "docs", "metric": "store"}, {"index": "docs-files", "metric": "store"}]


# -- searching -----------------------------------------------------------------------------------------


def test_bm25_searches_the_content_alone_without_fuzziness_under_the_filters(server, store):
    server.client.search.return_value = {"hits": {"hits": [{"_score": 3.5, "_source": {"id": "p", "content": "x",
                                                                                        "file_path": "/d/a.txt"}}]}}
    folder = {"field": "meta.file_path", "operator": "prefix", "value": "/d/"}
    [found] = store.bm25("When was it built?", top_k=7, filters=folder)
    assert (found.id, found.score, found.meta) == ("p", 3.5, {"file_path": "/d/a.txt"})
    body = server.client.search.call_args.kwargs
    assert body["index"] == "docs" and body["size"] == 7
    assert body["query"] == {"bool": {"must": [{"match": {"content": {"query": "When was it built?"}}}],
                                      "filter": [{"prefix": {"file_path": "/d/"}}]}}  # fmt: skip
    assert body["_source"] == {"excludes": ["embedding"]}


def test_dense_asks_for_the_nearest_among_the_filtered_and_scores_cosine(server):
    server.mappings |= {"docs": bodies.passage_mappings(8), "docs-files": bodies.files_mappings()}
    store = ElasticsearchStore("es://localhost:9200/docs")
    server.client.search.return_value = {"hits": {"hits": [{"_score": 0.975, "_source": {"id": "p", "content": "x"}}]}}
    types = {"field": "meta.file_type", "operator": "in", "value": ["pdf", "md"]}
    [found] = store.dense(unit(2), top_k=20, filters=types)
    assert found.score == pytest.approx(0.95)
    knn = server.client.search.call_args.kwargs["knn"]
    assert knn == {"field": "embedding", "query_vector": unit(2), "k": 20, "num_candidates": 200,
                   "filter": {"bool": {"must": {"terms": {"file_type": ["pdf", "md"]}}}}}  # fmt: skip
    assert bodies.knn_body(unit(0), 1, None)["knn"]["num_candidates"] == 100
    assert bodies.knn_body(unit(0), 5000, None)["knn"]["num_candidates"] == 10_000


def test_filters_translate_prefix_anywhere_and_the_rest_as_elasticsearch_haystack_does():
    not_title = {"field": "meta.title", "operator": "!=", "value": "Rome"}
    folder = {"field": "meta.file_path", "operator": "prefix", "value": "/d/"}
    tree = {"operator": "AND", "conditions": [not_title, {"operator": "NOT", "conditions": [folder]},
                                              {"operator": "OR", "conditions": [folder, not_title]}]}
    assert bodies.es_filter(tree) == {"bool": {"must": [
        {"bool": {"must": {"bool": {"must_not": {"term": {"title": "Rome"}}}}}},
        {"bool": {"must_not": [{"bool": {"must": [{"prefix": {"file_path": "/d/"}}]}}]}},
        {"bool": {"should": [{"prefix": {"file_path": "/d/"}},
                             {"bool": {"must": {"bool": {"must_not": {"term": {"title": "Rome"}}}}}}],
                  "minimum_should_match": 1}},
    ]}}  # fmt: skip


@pytest.mark.parametrize(
    "filters",
    [{"field": "content", "operator": "==", "value": "Paris is the capital of France."},
     {"field": "content", "operator": "!=", "value": "x"},
     {"field": "content", "operator": "in", "value": ["x", "y"]},
     {"field": "content", "operator": "prefix", "value": "Paris"},
     {"operator": "OR", "conditions": [{"field": "meta.file_type", "operator": "==", "value": "pdf"},
                                       {"operator": "NOT", "conditions": [
                                           {"field": "content", "operator": "==", "value": "x"}]}]}],
)
def test_filters_on_content_are_refused_before_any_request_not_answered_wrongly(server, filters):
    """The content is analysed text: elasticsearch-haystack's ``==`` on it (a ``term`` query) would compare a
    whole passage with its single words and match nothing."""
    server.mappings |= {"docs": bodies.passage_mappings(8), "docs-files": bodies.files_mappings()}
    store = ElasticsearchStore("es://localhost:9200/docs")
    assert store.content_filters is False and EmbeddedDocumentStore.content_filters is True
    server.client.reset_mock()
    for search in (lambda: store.filter_documents(filters), lambda: store.bm25("Paris", 5, filters),
                   lambda: store.bm25("Paris", 0, filters), lambda: store.dense(unit(0), 5, filters)):
        with pytest.raises(FilterError, match="cannot filter on a passage's content"):
            search()
    assert "search" not in names(server.client)
    with pytest.raises(FilterError, match="cannot filter on a passage's content"):
        bodies.es_filter(filters)
    title = {"field": "meta.title", "operator": "==", "value": "Paris"}  # a keyword: an exact term
    assert bodies.es_filter(title) == {"bool": {"must": {"term": {"title": "Paris"}}}}


def test_a_stores_own_mapping_is_no_difference():
    for mappings in (bodies.passage_mappings(None), bodies.passage_mappings(384)):
        assert bodies.mapping_problem(mappings, bodies.passage_mappings(None)) is None
    assert bodies.mapping_problem(bodies.files_mappings(), bodies.files_mappings()) is None
    dot = bodies.passage_mappings(None)
    dot["properties"]["embedding"] = {"type": "dense_vector", "dims": 8, "similarity": "dot_product"}
    assert "not a dense_vector by cosine" in bodies.mapping_problem(dot, bodies.passage_mappings(None))


def test_a_query_pipeline_points_its_retrievers_at_the_elasticsearch_store(server):
    server.mappings |= {"docs": bodies.passage_mappings(8), "docs-files": bodies.files_mappings()}
    pipeline = load_query_pipeline("hybrid", "es://localhost:9200/docs")
    stores = [c.document_store for _, c in pipeline.retrieval.walk() if hasattr(c, "document_store")]
    assert len(stores) == 2 and all(s.location == "es://localhost:9200/docs" for s in stores)


def test_a_query_pipeline_never_creates_the_index_it_reads(server):
    with pytest.raises(Exception) as raised:
        load_query_pipeline("bm25", "es://localhost:9200/docs")
    assert store_problem("es://localhost:9200/docs", raised.value) == MISSING
    assert "indices.create" not in names(server.client)


# -- reading a store that is not there -----------------------------------------------------------------

#: The line for an index not made yet: the index and the server named, what to do, no credential.
MISSING = ("store es://localhost:9200/docs: no index 'docs' on Elasticsearch at http://localhost:9200; index a "
           "folder into it first (corpusqa index PATH --store es://localhost:9200/docs)")  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [["stats"], ["stats", "--json"], ["ask", "Who built it?"], ["ask", "Who built it?", "--retriever", "bm25"],
     ["ui"], ["store", "check"], ["store", "repair"]],
)
def test_readers_of_an_index_not_made_yet_say_so_in_one_line_and_create_nothing(server, monkeypatch, capsys,
                                                                               command):
    monkeypatch.setenv("CORPUSQA_ES_USER", "elastic")
    monkeypatch.setenv("CORPUSQA_ES_PASSWORD", SECRET)
    monkeypatch.setattr("corpusqa.ui.launch.serve", lambda *args: pytest.fail("the page started"))
    assert main([*command, "--store", "es://localhost:9200/docs"]) == 2
    err = capsys.readouterr().err
    assert err == f"corpusqa {command[0]}: error: {MISSING}\n" and SECRET not in err
    assert not {"indices.create", "indices.put_mapping", "bulk_write"} & set(names(server.client))
    assert server.mappings == {}


def test_the_search_page_on_an_index_not_made_yet_says_so_and_creates_nothing(server, monkeypatch):
    import streamlit as st
    from corpusqa.ui.launch import APP, UISettings
    from streamlit.testing.v1 import AppTest

    for name, value in UISettings("es://localhost:9200/docs").environment().items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    page = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not page.exception, page.exception
    assert [error.value for error in page.error] == [f"**The store cannot answer.** {MISSING}"]
    assert server.mappings == {} and "indices.create" not in names(server.client)


def test_an_index_whose_file_records_are_missing_is_refused_to_readers_too(server):
    server.mappings["docs"] = bodies.passage_mappings(8)
    with pytest.raises(StoreError, match="no index 'docs-files' on Elasticsearch at http://localhost:9200; index a"):
        open_store("es://localhost:9200/docs", create=False)
    assert "indices.create" not in names(server.client)


def test_store_copy_reads_an_existing_source_and_creates_its_target(server, monkeypatch, tmp_path, capsys):
    copied = []
    monkeypatch.setattr("corpusqa.indexing.store.copy.copy_store",
                        lambda source, target, progress: copied.append((source, target)) or SimpleNamespace(summary=str))  # fmt: skip
    assert main(["store", "copy", "es://localhost:9200/docs", str(tmp_path / "copy")]) == 2
    assert capsys.readouterr().err == f"corpusqa store: error: {MISSING}\n"
    assert not (tmp_path / "copy").exists() and server.mappings == {} and copied == []
    with EmbeddedDocumentStore(tmp_path / "source"):
        pass
    assert main(["store", "copy", str(tmp_path / "source"), "es://localhost:9200/docs"]) == 0
    assert set(server.mappings) == {"docs", "docs-files"} and copied[0][1].location == "es://localhost:9200/docs"


def test_index_creates_the_index_it_writes(server, monkeypatch, tmp_path):
    given = []
    monkeypatch.setattr("corpusqa.indexing.indexer.index_paths",
                        lambda paths, store, **options: given.append(store) or SimpleNamespace(summary=str))  # fmt: skip
    assert main(["index", str(tmp_path), "--store", "es://localhost:9200/docs", "--quiet"]) == 0
    assert set(server.mappings) == {"docs", "docs-files"} and given[0].create
    assert open_store("es://localhost:9200/docs", create=False).location == "es://localhost:9200/docs"
