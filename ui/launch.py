"""`corpusqa ui`: runs the page (app.py) under Streamlit's server, bound to this machine unless told otherwise.

The settings reach the page through environment variables, the one channel that both ``streamlit run`` and
Streamlit's AppTest pass to a script unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = Path(__file__).with_name("app.py")
LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 8501
#: Per uploaded file: enough for long reports and manuals, small enough that one upload cannot fill a disk.
DEFAULT_MAX_MB = 50
_STORE, _MAX_MB, _THRESHOLD = "CORPUSQA_STORE", "CORPUSQA_UI_MAX_UPLOAD_MB", "CORPUSQA_UI_NO_ANSWER_THRESHOLD"


@dataclass(frozen=True)
class UISettings:
    """What the page needs from the command line: the store folder, the upload limit, and a no-answer
    threshold to start from instead of the pipeline's."""

    store: Path
    max_upload_mb: int = DEFAULT_MAX_MB
    no_answer_threshold: float | None = None

    def environment(self) -> dict[str, str]:
        found = {_STORE: str(self.store.resolve()), _MAX_MB: str(self.max_upload_mb)}
        if self.no_answer_threshold is not None:
            found[_THRESHOLD] = repr(self.no_answer_threshold)
        return found

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> UISettings:
        threshold = environ.get(_THRESHOLD)
        return cls(
            store=Path(environ.get(_STORE, ".corpusqa")),
            max_upload_mb=int(environ.get(_MAX_MB, DEFAULT_MAX_MB)),
            no_answer_threshold=None if threshold is None else float(threshold),
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
    """Run the server until it stops; Ctrl-C reaches it too, and it shuts down cleanly."""
    if host not in (LOCALHOST, "localhost", "::1"):
        print(f"corpusqa ui: on {host}, anyone who can reach this machine can search and upload", file=sys.stderr)
    print(f"corpusqa ui: http://{'localhost' if host == LOCALHOST else host}:{port}  (store {settings.store})")
    process = subprocess.Popen(streamlit_command(settings, host, port), env={**os.environ, **settings.environment()})
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()
