"""Which files an index run reads: the supported files under the paths given, and those left out, with why.

Folders are walked without recursion (a stack, so no nesting depth overflows Python's), at most
``MAX_DEPTH`` folders deep; a deeper folder is left out with its reason. Hidden entries, Word's lock files
and the ``exclude``d folders (the store's, when it lies inside a root) are skipped silently, as are files
of unsupported types. Only regular files are taken: a FIFO, socket or device with a supported name is
left out by name (reading a FIFO would wait forever). Symlinked folders are not followed; a symlinked
file is taken when it resolves inside the paths given, and otherwise left out unless ``follow_symlinks``
(a link to /etc/passwd in a shared folder must not put that file's text into the answers).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from corpusqa.indexing.convert import FILE_TYPES

#: Folders below a root that are searched; real document trees are a few to a dozen deep.
MAX_DEPTH = 64


@dataclass
class Discovery:
    """The files to index (absolute, sorted), and the paths left out with the reason for each."""

    files: list[Path] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)


def discover(
    paths: Iterable[Path], *, exclude: Iterable[Path] = (), follow_symlinks: bool = False, max_depth: int = MAX_DEPTH
) -> Discovery:
    """The files to index under ``paths`` (files and folders); see the module docstring for what is left out.

    A file named directly is taken whatever its type, so an unsupported one is reported by ``convert``
    instead of silently ignored; a path that does not exist raises FileNotFoundError.
    """
    roots = [os.path.abspath(path) for path in paths]
    walk = _Walk({os.path.abspath(path) for path in exclude}, [os.path.realpath(r) for r in roots], follow_symlinks)
    for root in roots:
        try:
            mode = os.stat(root).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file or folder: {root}") from None
        if stat.S_ISDIR(mode):
            walk.folder(root, max_depth)
        else:
            walk.file(root, mode, named=True)
    return Discovery(sorted(map(Path, walk.found)), sorted(walk.left_out.items()))


class _Walk:
    """What the walk has found and left out so far."""

    def __init__(self, excluded: set[str], real_roots: list[str], follow_symlinks: bool) -> None:
        self.excluded, self.real_roots, self.follow_symlinks = excluded, real_roots, follow_symlinks
        self.found: set[str] = set()
        self.left_out: dict[str, str] = {}

    def folder(self, root: str, max_depth: int) -> None:
        stack = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as error:
                self.left_out[folder] = f"folder cannot be read ({error.strerror})"
                continue
            for entry in entries:
                if entry.name.startswith((".", "~$")):  # hidden, and Word's lock files ("~$report.docx")
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if entry.path in self.excluded:
                        continue
                    if depth >= max_depth:
                        self.left_out[entry.path] = f"folder nested more than {max_depth} deep: not searched"
                    else:
                        stack.append((entry.path, depth + 1))
                elif Path(entry.name).suffix.lower() in FILE_TYPES:
                    try:
                        mode = entry.stat().st_mode  # follows a symlink
                    except OSError:
                        self.left_out[entry.path] = "symlink to nothing"
                        continue
                    if not stat.S_ISDIR(mode):
                        self.file(entry.path, mode, named=False)

    def file(self, path: str, mode: int, named: bool) -> None:
        """Take ``path`` unless it is not a regular file, or (found in a folder) a symlink leading out."""
        if not stat.S_ISREG(mode):
            self.left_out[path] = "not a regular file (a FIFO, socket or device): not read"
        elif not named and not self.follow_symlinks and os.path.islink(path) and not self._inside(path):
            self.left_out[path] = (f"symlink to {os.path.realpath(path)}, outside the folders indexed: not read "
                                   "(--follow-symlinks reads it)")  # fmt: skip
        else:
            self.found.add(path)

    def _inside(self, path: str) -> bool:
        target = Path(os.path.realpath(path))
        return any(target == Path(root) or target.is_relative_to(root) for root in self.real_roots)
