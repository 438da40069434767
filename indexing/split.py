"""Passages sized for extractive QA, cut by Haystack's RecursiveDocumentSplitter.

Passages end at paragraph or sentence ends where they can ("\\n\\n", then ".", then " "), hold at most
`split_length` words and repeat the last `split_overlap` words of the passage before, so an answer that
straddles a cut is still whole in one of them. Every passage records where it starts in its file's text
(`split_idx_start`, `file_text[start : start + len(content)] == content`) and, in a PDF, its page.

Defaults measured on SQuAD dev-v1.1 (benchmarks/split_sizes.py): see `IndexSettings` in indexer.py.
"""

from __future__ import annotations

import logging

from haystack import Document, component
from haystack.components.preprocessors import RecursiveDocumentSplitter

SEPARATORS = ["\n\n", ".", " "]
# Splitting counts words by spaces, so text without them (Chinese, minified data, base64) would stay one
# giant "word"; passages longer than this many characters per allowed word are cut again by characters.
MAX_CHARS_PER_WORD = 12
# Only PDFs have real pages; in other formats every passage would claim page 1.
PAGED_FILE_TYPES = {"pdf"}
# The splitter's bookkeeping that passages do not keep: parent_id repeats source_id, and _split_overlap
# names document ids that change when passages are rebuilt with their final meta.
_DROPPED_META = ("parent_id", "_split_overlap")
# Its one warning, "Overlap is the same as the previous chunk", is about the passages _without_contained drops.
logging.getLogger("haystack.components.preprocessors.recursive_splitter").setLevel(logging.ERROR)


@component
class PassageSplitter:
    """Files' documents -> passages with file meta, `source_id`, `split_id`, `split_idx_start` and PDF pages.

    Sizes in words; the measured defaults live in `IndexSettings` (indexer.py)."""

    def __init__(self, split_length: int, split_overlap: int) -> None:
        self.split_length = split_length
        self.split_overlap = split_overlap
        self._words = RecursiveDocumentSplitter(
            split_length=split_length, split_overlap=split_overlap, split_unit="word", separators=SEPARATORS
        )
        self.max_chars = split_length * MAX_CHARS_PER_WORD
        self._chars = RecursiveDocumentSplitter(
            split_length=self.max_chars,
            split_overlap=split_overlap * MAX_CHARS_PER_WORD,
            split_unit="char",
            separators=["\n", " "],
        )

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Split each document; passages of one document are numbered in order by `split_id`."""
        passages: list[Document] = []
        for document in documents:
            passages.extend(self._split(document))
        return {"documents": passages}

    def _split(self, document: Document) -> list[Document]:
        pieces: list[tuple[str, dict]] = []
        for piece in self._words.run([document])["documents"]:
            if len(piece.content) > self.max_chars:
                pieces.extend(self._cut_by_chars(piece))
            else:
                pieces.append((piece.content, piece.meta))
        paged = document.meta.get("file_type") in PAGED_FILE_TYPES
        passages = []
        for split_id, (content, piece_meta) in enumerate(_without_contained(pieces)):
            meta = {key: value for key, value in piece_meta.items() if key not in _DROPPED_META}
            meta["split_id"] = split_id
            if not paged:
                del meta["page_number"]
            passages.append(Document(content=content, meta=meta))
        return passages

    def _cut_by_chars(self, piece: Document) -> list[tuple[str, dict]]:
        """Cut an over-long passage by characters, keeping its offsets and pages relative to the file."""
        start, page = piece.meta["split_idx_start"], piece.meta["page_number"]
        # the splitters count pages from a passage's first character that is not a page break
        leading_breaks = len(piece.content) - len(piece.content.lstrip("\f"))
        cuts = self._chars.run([Document(content=piece.content)])["documents"]
        return [
            (
                cut.content,
                {
                    **piece.meta,
                    "split_idx_start": start + cut.meta["split_idx_start"],
                    "page_number": page - leading_breaks + cut.meta["page_number"] - 1,
                },
            )
            for cut in cuts
        ]


def page_at(passage: Document, offset: int) -> int | None:
    """The page of the character at ``offset`` in ``passage``: the passage's page (that of its first
    character after any page breaks) plus the page breaks ("\\f") before ``offset``; None without pages."""
    page = passage.meta.get("page_number")
    if not isinstance(page, int) or passage.content is None:
        return None
    leading_breaks = len(passage.content) - len(passage.content.lstrip("\f"))
    return page + passage.content.count("\f", leading_breaks, offset)


def _without_contained(pieces: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Drop pieces that lie wholly inside the next one.

    The splitter flushes what it holds before cutting an over-long paragraph, so a heading ("Geology")
    can become a piece of its own; with overlap, the next piece then starts with all of it again. Such a
    piece adds nothing but a near-empty passage for retrieval to return.
    """
    kept = []
    for (content, meta), (next_content, next_meta) in zip(pieces, pieces[1:], strict=False):
        start, next_start = meta["split_idx_start"], next_meta["split_idx_start"]
        if not (next_start <= start and start + len(content) <= next_start + len(next_content)):
            kept.append((content, meta))
    return kept + pieces[-1:]
