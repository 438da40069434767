"""`corpusqa serve`: the store's question answering as an HTTP API (FastAPI, served by uvicorn).

Routes: ``POST /ask`` (the JSON of `corpusqa ask --json`), ``POST /index`` (paths on the server as JSON, or
files uploaded as multipart form data), ``GET /stats``, ``GET /health``; OpenAPI docs at ``/docs``. With a
token, every route but /health and the docs wants ``Authorization: Bearer TOKEN``.
"""

import contextlib
import dataclasses
import logging
import secrets
import sys
import typing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.datastructures import UploadFile

from corpusqa.pipelines.store_checks import store_problem
from corpusqa.reader.options import ReadOptions
from corpusqa.server.limits import BodyLimit
from corpusqa.server.service import IndexBusy, PathRefused, Service
from corpusqa.server.settings import DEFAULT_PORT, ServerSettings
from corpusqa.ui.launch import LOCALHOST
from corpusqa.ui.uploads import MB

#: The most a JSON request (a question, a list of paths) may hold.
MAX_JSON_BYTES = 64 * 1024
MAX_QUESTION_CHARS = 2000
MAX_PASSAGES = 200
#: Files one upload request may carry (their bytes together: at most ``max_upload_mb``).
MAX_UPLOAD_FILES = 100
MAX_PATHS = 100
logger = logging.getLogger("corpusqa.server")


def _read_options_fields() -> dict[str, Any]:
    """Each ``ReadOptions`` field as an optional request field, described by the field's own help."""
    hints = typing.get_type_hints(ReadOptions)
    return {
        f.name: (hints[f.name] | None, Field(None, description=f.metadata.get("help")))
        for f in dataclasses.fields(ReadOptions)
    }


AskRequest = create_model(
    "AskRequest",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A question and how to answer it; fields left out take the server's pipeline's values.",
    question=(str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")),
    retriever=(Literal["bm25", "dense", "hybrid"] | None, Field(None, description="default: the server's")),
    passages=(int | None, Field(None, ge=1, le=MAX_PASSAGES, description="passages the reader reads")),
    file_types=(list[str] | None, Field(None, max_length=20, description="only passages of these file types")),
    **_read_options_fields(),
)
_ASK_FIELDS = ("question", "retriever", "passages", "file_types")


class IndexPaths(BaseModel):
    """Files and folders on the server to index (folders recursively, unchanged files skipped)."""

    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1, max_length=MAX_PATHS)
    prune: bool = Field(False, description="remove the store's files under these paths that are gone")


_INDEX_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": IndexPaths.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
        },
    }
}


def create_app(settings: ServerSettings) -> FastAPI:
    """The API over one store; its default pipeline (and so its models) loads as the server starts. A store
    that cannot answer (its database missing or damaged...) is logged as the server starts, and every route
    that needs it answers 503 with the reason until it is mended (`corpusqa store check` / `repair`)."""
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.suppress(HTTPException), _store_errors(settings.store):
            await run_in_threadpool(service.pipeline)  # a store that cannot answer is logged, then answers 503
        yield
        service.close()

    app = FastAPI(
        title="corpusqa",
        version=version("corpusqa"),
        summary="Extractive question answering over an indexed corpus.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=lambda scope: _body_limit(scope, settings))
    authorized = [Depends(_bearer(settings.token))]

    @app.get("/health")
    def health() -> dict:
        """Whether the server is up (no token needed)."""
        return {"status": "ok"}

    @app.post("/ask", dependencies=authorized)
    def ask(request: AskRequest) -> dict:  # type: ignore[valid-type]
        """Answer a question from the store: the same JSON as `corpusqa ask --json`."""
        given = request.model_dump(exclude_none=True)
        options = {name: value for name, value in given.items() if name not in _ASK_FIELDS}
        try:
            with _store_errors(settings.store):
                return service.ask(
                    given["question"], given.get("retriever"), given.get("passages"), given.get("file_types"), options
                )
        except ValueError as error:
            raise HTTPException(400, str(error)) from error

    @app.post("/index", dependencies=authorized, openapi_extra=_INDEX_BODY)
    async def index(request: Request) -> Any:
        """Index paths on the server (JSON ``{"paths": [...], "prune": false}``; each under a folder the store
        indexed before or an ``--index-root``), or files uploaded as multipart form data (field ``files``),
        kept in the uploads folder (in the store folder, or --data-dir). One index run at a time: 409 while another runs."""
        try:
            with _store_errors(settings.store):
                if request.headers.get("content-type", "").startswith("multipart/form-data"):
                    form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
                    files = [(item.filename or "upload", await item.read()) for item in form.getlist("files") if isinstance(item, UploadFile)]
                    if not files:
                        raise HTTPException(400, "no files in the form's 'files' field")
                    return {"files": await run_in_threadpool(service.index_uploads, files)}
                body = IndexPaths.model_validate_json(await request.body())
                return await run_in_threadpool(service.index_paths, body.paths, body.prune)
        except ValidationError as error:
            raise HTTPException(422, error.errors(include_url=False, include_context=False)) from error
        except IndexBusy as error:
            raise HTTPException(409, str(error)) from error
        except PathRefused as error:
            raise HTTPException(403, str(error)) from error

    @app.get("/stats", dependencies=authorized)
    def stats() -> dict:
        """What the store holds, as `corpusqa stats --json` prints it."""
        with _store_errors(settings.store):
            return service.stats()

    return app


def serve(settings: ServerSettings, host: str = LOCALHOST, port: int = DEFAULT_PORT) -> int:
    """Run the API until it is stopped (Ctrl-C, SIGTERM)."""
    import uvicorn

    if host not in (LOCALHOST, "localhost", "::1") and settings.token is None:
        print(f"corpusqa serve: on {host} without a token, anyone who can reach this machine can use it", file=sys.stderr)
    print(f"corpusqa serve: http://{'localhost' if host == LOCALHOST else host}:{port}  (docs at /docs, store {settings.store})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


@contextlib.contextmanager
def _store_errors(location: Any) -> Iterator[None]:
    """A store that cannot answer is the server's trouble, not the request's: its error (``store_problem``)
    becomes 503 with the one line naming the store and what to do, and is logged; other errors pass."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as error:
        problem = store_problem(location, error)
        if problem is None:
            raise
        logger.error("corpusqa serve: %s", problem)
        raise HTTPException(503, problem) from error


def _bearer(token: str | None):
    """A dependency that wants ``Authorization: Bearer <token>`` when there is a token."""
    scheme = HTTPBearer(auto_error=False, description="the token `corpusqa serve` was started with")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        if token is None:
            return
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, token.encode()):
            raise HTTPException(401, "a valid bearer token is needed", headers={"WWW-Authenticate": "Bearer"})

    return check


def _body_limit(scope: dict, settings: ServerSettings) -> int:
    """Uploads may carry ``max_upload_mb`` (and 1 MB for the form around the files); anything else is JSON."""
    kind = dict(scope["headers"]).get(b"content-type", b"")
    if scope["path"] == "/index" and kind.startswith(b"multipart/form-data"):
        return settings.max_upload_mb * MB + MB
    return MAX_JSON_BYTES
