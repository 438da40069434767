"""Where an Elasticsearch store lives and how to connect to it, read from a ``--store`` URL and the
environment without importing the client (the command line parses ``--store`` before loading anything).

``es://HOST[:PORT]/INDEX`` (or ``http://``) speaks plain HTTP; ``ess://`` or ``https://`` speaks TLS. The
port defaults to 9200. ``?shards=N&replicas=N`` set the index's shards and replicas when the store creates
it. Credentials come only from the environment (``API_KEY``, or ``USER`` and ``PASSWORD``; ``CA_CERTS``
names a CA bundle for TLS): a URL holding them is refused, and they never appear in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..contract import StoreError
from .names import index_name_problem

PORT = 9200
SCHEMES = {"es": "http", "http": "http", "ess": "https", "https": "https"}
API_KEY = "CORPUSQA_ES_API_KEY"
USER, PASSWORD = "CORPUSQA_ES_USER", "CORPUSQA_ES_PASSWORD"
CA_CERTS = "CORPUSQA_ES_CA_CERTS"
#: Seconds one request may take; a request that times out, or finds the node unreachable, is retried.
REQUEST_TIMEOUT, MAX_RETRIES = 30, 3
USAGE = "an Elasticsearch store is es://HOST[:PORT]/INDEX (ess:// or https:// for TLS)"
_SETTINGS = ("shards", "replicas")
_USERINFO = re.compile(r"(://)[^/@]*@")


@dataclass(frozen=True)
class Endpoint:
    """An Elasticsearch index: ``scheme`` (http or https), ``host``, ``port``, ``index``; ``shards`` and
    ``replicas`` for creating it (None: Elasticsearch's defaults, 1 and 1)."""

    scheme: str
    host: str
    port: int
    index: str
    shards: int | None = None
    replicas: int | None = None

    @classmethod
    def parse(cls, location: str) -> Endpoint:
        """The endpoint ``location`` names; ValueError, in one line naming it, for anything else."""
        shown = redacted(location)
        parts = urlsplit(location)
        if parts.scheme.lower() not in SCHEMES:
            raise ValueError(f"store {shown}: {USAGE}")
        if "@" in parts.netloc:
            raise ValueError(
                f"store {shown}: credentials do not go in the URL: set {API_KEY}, or {USER} and {PASSWORD}"
            )
        try:
            port = parts.port or PORT
        except ValueError:
            raise ValueError(f"store {shown}: {USAGE}; {parts.netloc!r} has no valid port") from None
        index = unquote(parts.path.strip("/"))
        if not parts.hostname or not index or "/" in index or parts.fragment:
            raise ValueError(f"store {shown}: {USAGE}")
        problem = index_name_problem(index)
        if problem is not None:
            raise ValueError(f"store {shown}: Elasticsearch would refuse the index name: {problem}")
        given = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(given) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"store {shown}: unknown setting {unknown[0]!r} (the URL takes shards and replicas)")
        counts = {name: _count(shown, name, value) for name, value in given.items()}
        if counts.get("shards") == 0:
            raise ValueError(f"store {shown}: shards must be at least 1")
        return cls(SCHEMES[parts.scheme.lower()], parts.hostname, port, index, **counts)

    @property
    def url(self) -> str:
        """The node's URL, as the client is given it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def location(self) -> str:
        """The store's ``--store`` value, spelled one way (es:// or ess://, the port, the settings)."""
        settings = "&".join(f"{name}={getattr(self, name)}" for name in _SETTINGS if getattr(self, name) is not None)
        scheme = "ess" if self.scheme == "https" else "es"
        return f"{scheme}{self.url[len(self.scheme):]}/{self.index}" + (f"?{settings}" if settings else "")


def client_options(endpoint: Endpoint, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``Elasticsearch`` client's keyword arguments: the node, timeouts and retries, and the credentials
    and CA bundle from ``environ`` (an API key wins over a user and password). StoreError, naming the
    variable, for half a user/password pair or a CA bundle that is not a file."""
    options: dict[str, Any] = {
        "hosts": [endpoint.url], "request_timeout": REQUEST_TIMEOUT, "max_retries": MAX_RETRIES,
        "retry_on_timeout": True,
    }  # fmt: skip
    api_key, user, password = environ.get(API_KEY), environ.get(USER), environ.get(PASSWORD)
    if api_key:
        options["api_key"] = api_key
    elif user or password:
        if not (user and password):
            missing = PASSWORD if user else USER
            raise StoreError(f"store {endpoint.location}: {missing} is not set ({USER} and {PASSWORD} go together)")
        options["basic_auth"] = (user, password)
    ca_certs = environ.get(CA_CERTS)
    if ca_certs:
        if endpoint.scheme != "https":
            raise StoreError(f"store {endpoint.location}: {CA_CERTS} is set, but the store speaks plain HTTP: "
                             "give ess://... or https://... for TLS")  # fmt: skip
        if not Path(ca_certs).is_file():
            raise StoreError(f"store {endpoint.location}: {CA_CERTS} names {ca_certs}, which is not a file")
        options["ca_certs"] = ca_certs
    return options


def has_credentials(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(API_KEY) or environ.get(USER))


def redacted(location: str) -> str:
    """``location`` with anything between ``://`` and ``@`` (a user and password) replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", location)


def _count(shown: str, name: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"store {shown}: {name} must be a whole number, not {value!r}")
    return int(value)
