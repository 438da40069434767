"""Elasticsearch's failures as one line naming the store and what to do: the server down or not answering,
TLS that does not verify, credentials refused or short of a privilege, a request refused. Never a
credential: messages are written here, not passed on from the server (whose 401 text names the user)."""

from __future__ import annotations

import elastic_transport
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, UnsupportedProductError

from ..contract import StoreError
from .endpoint import API_KEY, CA_CERTS, PASSWORD, REQUEST_TIMEOUT, USER, Endpoint

#: What ``explained`` turns into a ``StoreError``.
FAILURES = (elastic_transport.TransportError, ApiError)


def explained(endpoint: Endpoint, error: Exception, credentials: bool) -> StoreError:
    """``error`` (one of ``FAILURES``) as one line; ``credentials``: whether any were given."""
    where = f"store {endpoint.location}"
    if isinstance(error, elastic_transport.TlsError):
        return StoreError(f"{where}: the TLS certificate of {endpoint.url} does not verify; set {CA_CERTS} to the "
                          "CA bundle that signed it")  # fmt: skip
    if isinstance(error, elastic_transport.ConnectionTimeout):
        return StoreError(f"{where}: Elasticsearch at {endpoint.url} did not answer within {REQUEST_TIMEOUT} s")
    if isinstance(error, elastic_transport.ConnectionError):
        return StoreError(f"{where}: cannot reach Elasticsearch at {endpoint.url}: is it running, and is the "
                          "scheme right (ess:// for TLS)?")  # fmt: skip
    if isinstance(error, UnsupportedProductError):
        return StoreError(f"{where}: {endpoint.url} is not an Elasticsearch server")
    if isinstance(error, AuthenticationException):
        if not credentials:
            return StoreError(f"{where}: Elasticsearch asks for credentials: set {API_KEY}, or {USER} and {PASSWORD}")
        return StoreError(f"{where}: Elasticsearch refused the credentials (401): check {API_KEY}, or {USER} "
                          f"and {PASSWORD}")  # fmt: skip
    if isinstance(error, AuthorizationException):
        return StoreError(f"{where}: the credentials lack a privilege this needs on index {endpoint.index!r} "
                          f"(403: {_reason(error)})")  # fmt: skip
    if isinstance(error, ApiError):
        return StoreError(f"{where}: Elasticsearch refused the request ({error.status}: {_reason(error)})")
    return StoreError(f"{where}: {type(error).__name__} talking to Elasticsearch at {endpoint.url}")


def _reason(error: ApiError) -> str:
    """The server's short reason (``error.type``: ``error.reason``), its first line only."""
    body = error.body if isinstance(error.body, dict) else {}
    found = body.get("error", {})
    if isinstance(found, dict) and found.get("reason"):
        return f"{found.get('type', 'error')}: {str(found['reason']).splitlines()[0]}"
    return str(error.message).splitlines()[0]
