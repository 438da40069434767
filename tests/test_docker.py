"""docker/compose.yaml and docker/Dockerfile as written: what they wire together, read without a Docker
engine (none runs where these tests run; docs/elasticsearch.md says what has been run where)."""

from pathlib import Path

import yaml

from corpusqa.indexing.store.es.endpoint import Endpoint

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def test_compose_runs_a_secured_elasticsearch_an_index_run_the_page_and_the_api_on_one_store():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"elasticsearch", "index", "ui", "server"}
    search = services["elasticsearch"]
    assert search["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION:-8.")
    assert search["environment"]["xpack.security.enabled"] == "true" and "ELASTIC_PASSWORD" in search["environment"]
    assert "-Xms${ES_HEAP" in search["environment"]["ES_JAVA_OPTS"] and "healthcheck" in search
    assert search["volumes"] == ["esdata:/usr/share/elasticsearch/data"]
    stores = {name: services[name]["environment"]["CORPUSQA_STORE"] for name in ("index", "ui", "server")}
    assert len(set(stores.values())) == 1
    endpoint = Endpoint.parse(stores["index"].replace("${CORPUSQA_INDEX:-corpus}", "corpus"))
    assert (endpoint.host, endpoint.index, endpoint.replicas) == ("elasticsearch", "corpus", 0)
    for name in ("index", "ui", "server"):
        service = services[name]
        assert "${CORPUS_DIR:?set CORPUS_DIR in docker/.env}:/corpus:ro" in service["volumes"]
        assert "password" not in service["environment"]["CORPUSQA_STORE"].lower()
        assert service["environment"]["CORPUSQA_ES_PASSWORD"].startswith("${ELASTIC_PASSWORD")
        assert service["depends_on"]["elasticsearch"] == {"condition": "service_healthy"}
    assert services["index"]["command"][:2] == ["index", "/corpus"]
    for name in ("ui", "server"):
        assert services[name]["depends_on"]["index"] == {"condition": "service_completed_successfully"}
        assert "--data-dir" in services[name]["command"]
    assert services["server"]["environment"]["CORPUSQA_TOKEN"].startswith("${CORPUSQA_TOKEN:?")


def test_the_image_is_cpu_only_unless_told_otherwise():
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert 'pip install --index-url "${TORCH_INDEX}" "${TORCH}"' in dockerfile
