"""Request bodies bounded before they are read: a body longer than its route allows is refused with 413,
whether it says its length up front (Content-Length) or streams it (chunked)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException


class BodyLimit:
    """ASGI middleware: ``limit(scope)`` gives the most bytes a request's body may hold."""

    def __init__(self, app: Any, limit: Callable[[dict], int]):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit)
            return
        received = 0

        async def bounded_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # raised where the route reads its body; answered as a 413
                    raise HTTPException(413, _over(limit))
            return message

        await self.app(scope, bounded_receive, send)


def _over(limit: int) -> str:
    return f"request body over the limit of {limit:,} bytes"


async def _too_large(send: Callable, limit: int) -> None:
    body = json.dumps({"detail": _over(limit)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
