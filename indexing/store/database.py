"""A store's SQLite database: what makes a folder a store, opening it, and SQLite's errors in one line.

A folder is a store when it holds ``store.sqlite3``; a new or empty folder becomes one. Anything else is
refused rather than mixed: a folder of other files (a document folder given as the store by mistake),
or index folders beside a database that is missing or empty (deleted or replaced: the indexes would
answer for passages the database no longer holds). The database keeps a random store id, created with
it, that every index folder's manifest names (see ``manifest``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from .contract import StoreError

DATABASE = "store.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    row INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the indexes name passages by row
    id TEXT NOT NULL UNIQUE,
    content TEXT,
    meta TEXT NOT NULL,
    embedding BLOB,
    file_path TEXT
);
CREATE INDEX IF NOT EXISTS documents_file_path ON documents (file_path);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    passages INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value);
INSERT OR IGNORE INTO state VALUES ('generation', 0);
INSERT OR IGNORE INTO state VALUES ('store_id', lower(hex(randomblob(16))));  -- named by every index folder
CREATE TABLE IF NOT EXISTS removed (row INTEGER PRIMARY KEY, generation INTEGER NOT NULL);  -- see _caught_up
INSERT OR IGNORE INTO state VALUES ('log_start', 0);  -- removals up to this generation are forgotten
CREATE TABLE IF NOT EXISTS roots (path TEXT PRIMARY KEY);  -- what was given to indexing, see record_roots
"""

#: What a store leaves in its folder that holds no data: the lock of index runs, SQLite's shared-memory index.
_LEFT_BESIDE = {"bulk.lock", f"{DATABASE}-shm"}
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}


def connect(folder: Path, index_folders: Callable[[], list[Path]]) -> sqlite3.Connection:
    """The store's database in ``folder``, created with the folder when new, with its tables.

    ``index_folders`` lists the index folders beside it. Raises ``StoreError`` for a folder that is not a
    store, index folders without their database, or a database SQLite cannot read.
    """
    database = folder / DATABASE
    if not database.exists():
        write_ahead_log = folder / f"{DATABASE}-wal"  # commits not yet in the database file: its data too
        leftovers = index_folders() + ([write_ahead_log] if write_ahead_log.exists() else [])
        if leftovers:
            raise orphaned(folder, leftovers)
        if folder.is_dir() and any(entry.name not in _LEFT_BESIDE for entry in folder.iterdir()):
            raise StoreError(
                f"store {folder}: the folder holds other files and no store ({DATABASE}); give a new or empty folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    try:
        if not has_tables(db) and index_folders():
            raise orphaned(folder, index_folders())
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before indexes carry its generation
        db.execute("PRAGMA busy_timeout = 30000")
        db.executescript(SCHEMA)
    except sqlite3.Error as error:
        db.close()
        raise explained(folder, error) from error
    except StoreError:
        db.close()
        raise
    return db


def has_tables(db: sqlite3.Connection) -> bool:
    """Whether the database holds a store's tables (a new, an empty or a zero-byte file does not)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state'").fetchone() is not None


def orphaned(folder: Path, leftovers: list[Path]) -> StoreError:
    """The refusal of index folders (or a write-ahead log) found without the database they belong to."""
    names = ", ".join(path.name for path in leftovers)
    return StoreError(
        f"store {folder}: {names} without their database ({DATABASE} is missing or empty: deleted or replaced?); "
        f"restore the database, or start an empty store there with `corpusqa store repair --store {folder}` "
        "and index your files again"
    )


def explained(folder: Path | str, error: sqlite3.Error, damaged: bool = False) -> StoreError:
    """SQLite's ``error`` as one line naming the store and what to do; ``damaged``: SQLite's checks found
    damage (SQLite's own error codes tell it otherwise)."""
    kind = getattr(error, "sqlite_errorname", "")
    if damaged or is_damage(error):
        return StoreError(
            f"store {folder}: its database {DATABASE} is damaged ({error}); `corpusqa store check --store {folder}` "
            "says what is wrong; restore the database from a backup, or index your files into a new store"
        )
    if kind in _BUSY:
        return StoreError(f"store {folder}: its database is busy ({error}): another process holds it; try again")
    return StoreError(f"store {folder}: SQLite cannot use its database {DATABASE} ({error})")


def is_damage(error: sqlite3.Error) -> bool:
    """Whether SQLite says the database file is damaged (rather than busy, read-only, full, ...)."""
    return getattr(error, "sqlite_errorname", "") in _DAMAGED
