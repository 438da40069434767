"""The corpus as the UI shows it: the folders to filter by, and which original files may be downloaded."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from corpusqa.indexing.store.contract import CorpusStore


class NotServable(Exception):
    """An original file the UI will not hand out, and why."""


def servable_file(store: CorpusStore, file_path: str | None) -> Path:
    """The original file behind a passage, if it may be downloaded: one the store indexed, that still lies
    (symlinks resolved) under a root given to indexing, and is still a regular file. Anything else raises
    NotServable: a passage's recorded path alone must never let the page read an arbitrary file."""
    if not file_path or store.file_record(file_path) is None:
        raise NotServable("the store has no record of this file")
    roots = store.roots()
    if not roots:
        raise NotServable("the store does not record which folders were indexed: index them again to allow downloads")
    real = Path(os.path.realpath(file_path))
    if not any(real.is_relative_to(root) for root in roots):
        raise NotServable("the file lies outside the indexed folders")
    if not real.is_file():
        raise NotServable("the file is no longer there")
    return real


def folder_choices(file_paths: Iterable[str]) -> dict[str, str]:
    """Folder filter options, label -> absolute folder: every folder holding indexed files, with the folders
    between it and the one all files share, labelled relative to that shared folder (which needs no filter).
    A path prefix filter on ``folder + os.sep`` then takes a folder with its subfolders."""
    parents = {os.path.dirname(path) for path in file_paths}
    if len(parents) < 2:
        return {}
    shared = os.path.commonpath(list(parents))
    folders = set()
    for parent in parents:
        while parent != shared and parent not in folders:
            folders.add(parent)
            parent = os.path.dirname(parent)
    return {os.path.relpath(folder, shared): folder for folder in sorted(folders)}


def folder_prefix(folder: str) -> str:
    """The ``meta.file_path`` prefix of the files in ``folder`` and its subfolders (not ``folder2``)."""
    return folder.rstrip(os.sep) + os.sep


def local_time(timestamp: float | None) -> str:
    return "never" if timestamp is None else datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
