"""Checking and repairing a store folder: what ``corpusqa store check`` and ``store repair`` run.

``check_store`` reads without writing: SQLite's integrity check, the per-file passage counts against the
passages, and every index folder against its manifest. ``repair_store`` rebuilds both indexes from the
database's rows, replacing every index folder; where index folders have no database beside them, it
removes them and leaves an empty store, to be indexed again. A damaged database is not repaired: SQLite
cannot tell which passages the damaged pages held.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import folders, manifest
from .contract import Finding, StoreError
from .database import DATABASE, explained, has_tables, is_damage, orphaned
from .embedded import _INDEXES, EmbeddedDocumentStore


def check_store(folder: Path) -> list[Finding]:
    """What is right and wrong with the store in ``folder``; raises ``StoreError`` when there is no store."""
    index_folders = folders.saved(folder, list(_INDEXES))
    if not (folder / DATABASE).is_file():
        if _leftovers(folder):
            return [Finding("database", False, str(orphaned(folder, _leftovers(folder))))]
        raise StoreError(f"no store at {folder}")
    db = sqlite3.connect(f"file:{folder / DATABASE}?mode=ro", uri=True)
    try:
        problems = [line for (line,) in db.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            return [Finding("database", False, f"damaged: {shown}")]
        if not has_tables(db):
            if index_folders:
                return [Finding("database", False, str(orphaned(folder, index_folders)))]
            raise StoreError(f"no store at {folder}: {DATABASE} is empty")
        findings = _database_findings(db)
        state = dict(db.execute("SELECT key, value FROM state"))
        store_id, generation = state.get("store_id"), state.get("generation", 0)  # a store id from its first opening
    except sqlite3.Error as error:
        return [Finding("database", False, f"damaged: {error}" if is_damage(error) else str(explained(folder, error)))]
    finally:
        db.close()
    for path in index_folders:
        saved = int(path.name.split("-")[1])
        reason = manifest.problem(path, store_id, saved)
        if reason is None and saved > generation:
            reason = f"newer than the database (generation {generation}): was the database restored from a backup?"
        findings.append(Finding(path.name, reason is None, reason or f"matches the database at generation {saved}"))
    if not index_folders:
        findings.append(Finding("indexes", True, "none saved yet: they are built from the database on first use"))
    return findings


def repair_store(folder: Path) -> list[str]:
    """Repair what ``check_store`` can find wrong, short of a damaged database; returns what was done.
    Run it while no other process uses the store."""
    index_folders = folders.saved(folder, list(_INDEXES))
    database = folder / DATABASE
    if _leftovers(folder) and _without_tables(database):
        for path in index_folders:
            folders.discard(path)
        for file in [database, database.with_name(f"{DATABASE}-wal"), database.with_name(f"{DATABASE}-shm")]:
            file.unlink(missing_ok=True)
        with EmbeddedDocumentStore(folder):
            pass
        return [f"removed {len(index_folders)} index folders that had no database; the store is empty now: "
                "index your files again"]
    if not database.is_file():
        raise StoreError(f"no store at {folder}")
    damage = [finding.text for finding in check_store(folder) if finding.subject == "database" and not finding.ok]
    if damage:
        raise StoreError(f"store {folder}: its database cannot be repaired in place ({damage[0]}); restore it "
                         "from a backup, or index your files into a new store")
    with EmbeddedDocumentStore(folder) as store:
        return store.repair()


def _database_findings(db: sqlite3.Connection) -> list[Finding]:
    """The integrity check passed: what the database holds, and whether each file's passages are all there."""
    passages, files, generation = db.execute(
        "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM files), "
        "(SELECT value FROM state WHERE key = 'generation')"
    ).fetchone()
    findings = [Finding("database", True, f"integrity check passed: {passages:,} passages of {files:,} files, "
                                          f"generation {generation}")]  # fmt: skip
    short = db.execute(
        "SELECT f.path, f.passages, COUNT(d.row) FROM files f LEFT JOIN documents d ON d.file_path = f.path "
        "GROUP BY f.path HAVING f.passages != COUNT(d.row) ORDER BY f.path"
    ).fetchall()
    for path, recorded, found in short:
        findings.append(Finding("files", False, f"{path}: {found:,} passages stored, {recorded:,} recorded"))
    if not short:
        findings.append(Finding("files", True, "every file's passages are stored"))
    return findings


def _leftovers(folder: Path) -> list[Path]:
    """The index folders, and the write-ahead log, in ``folder``: what a missing database leaves behind."""
    write_ahead_log = folder / f"{DATABASE}-wal"
    return folders.saved(folder, list(_INDEXES)) + ([write_ahead_log] if write_ahead_log.exists() else [])


def _without_tables(database: Path) -> bool:
    """Whether ``database`` is missing, empty, or holds no store's tables."""
    if not database.is_file() or database.stat().st_size == 0:
        return True
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return not has_tables(db)
    except sqlite3.Error:
        return False  # damaged: not to be thrown away with the indexes
    finally:
        db.close()
