"""Files that a hostile user or a broken system puts into a corpus, for the tests of what indexing refuses.

Every builder writes into a path it is given and returns what the test needs.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import docx

PARTS_WORDS = "réglage température câble entretien sécurité appareil débranché élément à où été déjà pièce réf. écrou vis".split()
PARTS_SYMBOLS = "°±§¶©®×÷µ²³½¼¾«»·¬¦¤£¢¡¿Øø"


def latin1_parts_list(size: int = 38_000) -> str:
    """A French parts list so dense in Latin-1 symbols (``±12 ½ ¶76 °60``) that charset-normalizer finds no
    encoding for its Latin-1 bytes; ``size`` characters or a line more. Seeded: the same text every time."""
    rng = random.Random(2)
    lines, length = [], 0
    while length < size:
        tokens = [
            rng.choice(PARTS_WORDS) if rng.random() < 0.25
            else "".join(rng.choice(PARTS_SYMBOLS) for _ in range(rng.randint(1, 2))) + str(rng.randint(0, 99))
            for _ in range(rng.randint(3, 10))
        ]  # fmt: skip
        lines.append(" ".join(tokens))
        length += len(lines[-1]) + 1
    return "\n".join(lines) + "\n"


def write_docx_bomb(path: Path, inflated: int) -> Path:
    """A DOCX whose document.xml inflates to ``inflated`` bytes of paragraphs from a few hundred KB: python-docx's
    own template, with the body repeated."""
    template = io.BytesIO()
    docx.Document().save(template)
    paragraph = b"<w:p><w:r><w:t>All work and no play makes a dull document.</w:t></w:r></w:p>"
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for part in source.infolist():
            if part.filename != "word/document.xml":
                bomb.writestr(part, source.read(part))
                continue
            head, tail = source.read(part).split(b"<w:body>")
            with bomb.open(part.filename, "w", force_zip64=True) as body:
                body.write(head + b"<w:body>")
                chunk = paragraph * (1_000_000 // len(paragraph))
                for _ in range(inflated // len(chunk)):
                    body.write(chunk)
                body.write(tail)
    return path


def nest_folders(root: Path, depth: int) -> Path:
    """``depth`` folders nested in ``root`` (named d/d/d/...); returns the deepest."""
    folder = root
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(depth):  # one level at a time: pathlib's mkdir(parents=True) recurses
        folder = folder / "d"
        folder.mkdir()
    return folder


def remove_nested(root: Path, depth: int) -> None:
    """Remove what ``nest_folders`` made, deepest first: shutil.rmtree recurses past Python's recursion limit."""
    for level in range(depth, 0, -1):
        folder = root.joinpath(*["d"] * level)
        for file in folder.iterdir():
            if file.is_file():
                file.unlink()
        folder.rmdir()


def make_fifo(path: Path) -> Path:
    """A named pipe: opening it to read waits for a writer, for ever when none comes."""
    os.mkfifo(path)
    return path
