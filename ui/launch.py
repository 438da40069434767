"""`corpusqa ui`: runs the page (app.py) under Streamlit's server, bound to this machine unless told otherwise.

The settings reach the page through environment variables, the one channel that both ``streamlit run`` and
Streamlit's AppTest pass to a script unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP = Path(__file__).with_name("app.py")
LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 8501
#: Per uploaded file: enough for long reports and manuals, small enough that one upload cannot fill a disk.
DEFAULT_MAX_MB = 50
_STORE, _MAX_MB, _OPTIONS = "CORPUSQA_STORE", "CORPUSQA_UI_MAX_UPLOAD_MB", "CORPUSQA_UI_READ_OPTIONS"
_DATA = "CORPUSQA_UI_DATA_DIR"


@dataclass(frozen=True)
class UISettings:
    """What the page needs from the command line: ``store``, a store folder or URL (`--store`); the upload
    limit; fields of the reader's ``ReadOptions`` to start from instead of the pipeline's (`corpusqa ui
    --no-answer-threshold 2`); and ``data_dir``, the folder for uploads and feedback (None: the store folder)."""

    store: Path | str
    max_upload_mb: int = DEFAULT_MAX_MB
    options: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None

    @property
    def folder(self) -> Path:
        """Where uploads and feedback are kept."""
        return self.data_dir if self.data_dir is not None else Path(self.store)

    def environment(self) -> dict[str, str]:
        store = self.store.resolve() if isinstance(self.store, Path) else self.store
        found = {_STORE: str(store), _MAX_MB: str(self.max_upload_mb)}
        if self.data_dir is not None:
            found[_DATA] = str(self.data_dir.resolve())
        if self.options:
            found[_OPTIONS] = json.dumps(dict(self.options))
        return found

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> UISettings:
        from corpusqa.indexing.store.location import is_folder

        store = environ.get(_STORE, ".corpusqa")
        return cls(
            store=Path(store) if is_folder(store) else store,
            max_upload_mb=int(environ.get(_MAX_MB, DEFAULT_MAX_MB)),
            options=json.loads(environ.get(_OPTIONS, "{}")),
            data_dir=Path(environ[_DATA]) if environ.get(_DATA) else None,
        )


def streamlit_command(settings: UISettings, host: str = LOCALHOST, port: int = DEFAULT_PORT) -> list[str]:
    """``streamlit run app.py`` as a server: headless (no browser opened on the server), no usage statistics
    sent, no file watching, no developer menu; uploads capped at the page's own limit."""
    options = {
        "server.address": host,
        "server.port": port,
        "server.headless": "true",
        "server.fileWatcherType": "none",
        "server.maxUploadSize": settings.max_upload_mb,
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "viewer",
    }
    return [sys.executable, "-m", "streamlit", "run", str(APP), *(f"--{key}={value}" for key, value in options.items())]


def serve(settings: UISettings, host: str = LOCALHOST, port: int = DEFAULT_PORT) -> int:
    """Run the server until it stops. SIGTERM and SIGINT (Ctrl-C) stop it: the server runs in its own session,
    out of the terminal's reach, and this process passes each signal on once; it returns when the server has
    shut down."""
    if host not in (LOCALHOST, "localhost", "::1"):
        print(f"corpusqa ui: on {host}, anyone who can reach this machine can search and upload", file=sys.stderr)
    print(f"corpusqa ui: http://{'localhost' if host == LOCALHOST else host}:{port}  (store {settings.store})")
    process = subprocess.Popen(
        streamlit_command(settings, host, port), env={**os.environ, **settings.environment()}, start_new_session=True
    )

    def pass_on(number: int, frame: object) -> None:
        if process.poll() is None:
            process.send_signal(number)

    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
