"""Calls to a running `corpusqa serve` (`corpusqa ask --server URL`), with the standard library only: asking a
server must not load what the server has loaded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ServerError(Exception):
    """The server could not be reached, or refused the request (its reason included)."""


def call(url: str, route: str, payload: Any = None, token: str | None = None, timeout: float = 600.0) -> Any:
    """``route`` of the server at ``url``: GET, or POST with ``payload`` as JSON; the JSON it answers."""
    headers = {"Accept": "application/json"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url.rstrip("/") + route, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise ServerError(f"{url}{route} answered {error.code}: {_detail(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ServerError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None


def _detail(error: urllib.error.HTTPError) -> str:
    """The server's reason: FastAPI's ``detail`` (a message, or validation errors naming their fields)."""
    try:
        detail = json.load(error)["detail"]
    except (ValueError, KeyError, TypeError):
        return error.reason
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}" for item in detail)
    return str(detail)
