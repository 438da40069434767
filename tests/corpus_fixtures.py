"""A small corpus of real-looking files, one of each supported format plus the bad files an indexer meets.

The text comes from SQuAD dev-v1.1 contexts (the sample committed in tests/data), so passages read like the
documents the product is built for. Every builder writes into a folder it is given and returns the paths.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

import docx
from fpdf import FPDF
from shared_data import SAMPLE_DIR

PDF_TITLE = "The Steam Engine"
DOCX_TITLE = "Oxygen"
HTML_TITLE = "Apollo program"
MARKDOWN_HEADING = "Geology"
# a fact that only the DOCX table states
TABLE_ROWS = [["Isotope", "Half-life"], ["Oxygen-15", "122 seconds"], ["Oxygen-14", "70.6 seconds"]]
LATIN1_TEXT = (
    "Le château de Versailles, à l'ouest de Paris, fut agrandi sous Louis XIV. "
    "Les jardins à la française, dessinés par André Le Nôtre, s'étendent sur des kilomètres. "
    "Die Brücke über den Fluss wurde im Jahr 1887 in Zürich gebaut; sie ist größer als die ältere. "
    "Naïve visitors often mistake the façade for a reconstruction, déjà vu for every tourist."
)


@cache
def _articles() -> dict[str, list[str]]:
    data = json.loads((SAMPLE_DIR / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    return {article["title"]: [p["context"] for p in article["paragraphs"]] for article in data}


def paragraphs(article: str, count: int, *, ascii_only: bool = False) -> list[str]:
    """The first `count` paragraphs of a SQuAD dev article (ASCII-only ones for fpdf2's core fonts)."""
    found = [p for p in _articles()[article] if p.isascii() or not ascii_only]
    return found[:count]


def pdf_pages() -> list[str]:
    """Three pages of two paragraphs each, different on every page."""
    found = paragraphs("Steam_engine", 6, ascii_only=True)
    return ["\n\n".join(found[i : i + 2]) for i in range(0, 6, 2)]


def write_pdf(path: Path, pages: list[str], title: str) -> Path:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("Helvetica", size=11)
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, page)
    pdf.output(str(path))
    return path


def write_docx(path: Path, texts: list[str], table: list[list[str]], title: str) -> Path:
    document = docx.Document()
    document.core_properties.title = title
    for text in texts:
        document.add_paragraph(text)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for row, values in zip(grid.rows, table, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.save(str(path))
    return path


def write_html(path: Path, title: str, texts: list[str]) -> Path:
    body = "\n".join(f"<p>{text}</p>" for text in texts)
    path.write_text(
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>\n{body}\n</article></body></html>\n",
        encoding="utf-8",
    )
    return path


def write_markdown(path: Path, heading: str, texts: list[str]) -> Path:
    sections = [f"# {heading}", texts[0], "## History", *texts[1:]]
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path


def good_corpus(root: Path) -> dict[str, Path]:
    """One file of each supported format, some in a subfolder: name -> path."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    files = {
        "pdf": write_pdf(root / "steam_engine.pdf", pdf_pages(), PDF_TITLE),
        "docx": write_docx(root / "oxygen.docx", paragraphs("Oxygen", 3), TABLE_ROWS, DOCX_TITLE),
        "html": write_html(root / "sub" / "apollo.html", HTML_TITLE, paragraphs("Apollo_program", 3)),
        "md": write_markdown(root / "sub" / "geology.md", MARKDOWN_HEADING, paragraphs("Geology", 3)),
        "txt": root / "rhine.txt",
    }
    files["txt"].write_text("\n\n".join(paragraphs("Rhine", 4)) + "\n", encoding="utf-8")
    return files


def small_files(root: Path, count: int) -> list[Path]:
    """`count` text files of one SQuAD dev paragraph each, from articles `good_corpus` does not use; as the
    sample holds fewer paragraphs, they come round again, numbered so that no two files are the same."""
    root.mkdir(parents=True, exist_ok=True)
    used = {"Steam_engine", "Oxygen", "Apollo_program", "Geology", "Rhine"}
    texts = [text for title, article in _articles().items() if title not in used for text in article]
    files = [root / f"paragraph-{number:03}.txt" for number in range(count)]
    for number, path in enumerate(files):
        path.write_text(f"{texts[number % len(texts)]}\n\nParagraph {number}.\n", encoding="utf-8")
    return files


def write_huge_line(path: Path, size: int = 3_000_000) -> Path:
    """A text file of `size` characters on a single line: SQuAD paragraphs joined by spaces, repeated."""
    text = " ".join(p.replace("\n", " ") for article in list(_articles().values())[:8] for p in article)
    path.write_text(((text + " ") * (size // len(text) + 1))[:size], encoding="utf-8")
    return path


def bad_corpus(root: Path) -> dict[str, Path]:
    """Files that must fail with a reason (empty, corrupt_pdf, binary) or must still index (latin1)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    files = {name: root / file for name, file in [
        ("empty", "empty.txt"), ("corrupt_pdf", "corrupt.pdf"), ("binary", "binary.txt"),
        ("latin1", "latin1.txt"),
    ]}  # fmt: skip
    files["empty"].write_bytes(b"")
    files["corrupt_pdf"].write_bytes(rng.randbytes(4096))
    files["binary"].write_bytes(b"\x7fELF\x02\x01\x01\x00" + rng.randbytes(4096))
    files["latin1"].write_bytes(LATIN1_TEXT.encode("latin-1"))
    return files
