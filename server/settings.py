"""How `corpusqa serve` was started: read by the command line without loading the server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusqa.ui.launch import DEFAULT_MAX_MB

DEFAULT_PORT = 8000
#: Where `corpusqa serve` and `corpusqa ask --server` look for the bearer token (`--token-file` overrides it).
TOKEN_VARIABLE = "CORPUSQA_TOKEN"


@dataclass(frozen=True)
class ServerSettings:
    """``store``: the store folder or URL. ``data_dir``: the folder uploads are kept in (None: the store
    folder). ``retriever``: for questions that name none. ``reader``: overrides of the
    pipelines' reader, its init parameters (``model``, ``device``...) or fields of its ``ReadOptions``.
    ``reranker``: a cross-encoder re-ranking retrieved passages. ``max_upload_mb``: the most one upload
    request may carry (the UI's per-file limit). ``index_roots``: folders under which the server indexes
    paths it is sent, besides the folders the store has indexed before. ``token``: the bearer token every
    route but /health and the docs asks for (None: no token); never shown.
    """

    store: Path | str
    retriever: str = "hybrid"
    reader: Mapping[str, Any] = field(default_factory=dict)
    reranker: str | None = None
    max_upload_mb: int = DEFAULT_MAX_MB
    index_roots: tuple[Path, ...] = ()
    token: str | None = field(default=None, repr=False)
    data_dir: Path | None = None

    @property
    def folder(self) -> Path:
        """Where uploads are kept."""
        return self.data_dir if self.data_dir is not None else Path(self.store)


def read_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token in ``token_file`` (its first line), else ``$CORPUSQA_TOKEN``, else None. A file is
    preferred to a flag holding the token itself, which any user of the machine could read in `ps`."""
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"{token_file} is empty: it should hold the token")
        return token
    return environ.get(TOKEN_VARIABLE) or None
