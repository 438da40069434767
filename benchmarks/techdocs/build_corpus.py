"""Assemble the techdocs corpus: documentation a Debian 12 machine ships, in every format corpusqa reads.

    python benchmarks/techdocs/build_corpus.py [--out runs/techdocs/corpus]

Sources (``SOURCES``): man pages of Debian 12 packages, rendered by groff-base as ``man`` prints them (plain
text), or with their tbl tables as real tables and their code and examples as preformatted text (HTML,
Markdown, DOCX), or typeset into PDFs with fpdf2; and documentation files the packages install as they are
(HTML manuals, Markdown pages, a PDF specification).
Each output records its origin in ``sources.json``: the file it came from, the Debian package and version
that installed it and the source's SHA-256, so a corpus built elsewhere can be compared with the one the
questions were written on. A source that is missing (its package not installed, or man pages excluded, as
in Docker images) is skipped and reported; ``run.py`` leaves out the questions on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import formats  # noqa: E402
import manpage  # noqa: E402

MAN = Path("/usr/share/man")
DOC = Path("/usr/share/doc")
DEFAULT_OUT = Path("runs/techdocs/corpus")

# (output file, source, how): "man" renders a man page to the output's format; "copy" copies a file as is
# (a .gz is decompressed).
SOURCES: list[tuple[str, Path, str]] = [
    # man pages as plain text
    *(
        (f"{Path(page).name}.txt", MAN / f"{page}.gz", "man")
        for page in [
            "man1/tar.1", "man1/gzip.1", "man1/grep.1", "man1/sed.1", "man1/sort.1", "man1/du.1", "man1/date.1",
            "man1/ls.1", "man1/split.1", "man1/timeout.1", "man1/dd.1", "man1/xargs.1", "man1/less.1",
            "man1/dpkg.1", "man8/apt-get.8", "man5/sources.list.5", "man7/hier.7", "man7/utf-8.7", "man7/pipe.7",
            "man7/udp.7", "man5/passwd.5", "man5/fstab.5", "man5/os-release.5", "man5/ssh_config.5",
            "man1/python3.11.1",
        ]
    ),
    # man pages with tables, as tables
    ("xz.1.html", MAN / "man1/xz.1.gz", "man"),
    ("find.1.html", MAN / "man1/find.1.gz", "man"),
    ("signal.7.md", MAN / "man7/signal.7.gz", "man"),
    ("ascii.7.docx", MAN / "man7/ascii.7.gz", "man"),
    ("ip.7.docx", MAN / "man7/ip.7.gz", "man"),
    # man pages typeset as PDFs
    ("tcp.7.pdf", MAN / "man7/tcp.7.gz", "man"),
    ("socket.7.pdf", MAN / "man7/socket.7.gz", "man"),
    # documentation files as installed
    ("time.html", DOC / "time/time.html", "copy"),
    ("bc.html", DOC / "bc/bc.html", "copy"),
    ("users-and-groups.html", DOC / "base-passwd/users-and-groups.html", "copy"),
    ("systemd-UIDS-GIDS.md", DOC / "systemd/UIDS-GIDS.md.gz", "copy"),
    ("pip-dependency-resolution.md", DOC / "python3-pip/html/topics/dependency-resolution.md.gz", "copy"),
    ("pip-configuration.md", DOC / "python3-pip/html/topics/configuration.md.gz", "copy"),
    ("pip-caching.md", DOC / "python3-pip/html/topics/caching.md.gz", "copy"),
    ("shared-mime-info-spec.pdf", DOC / "shared-mime-info/shared-mime-info-spec.pdf", "copy"),
]


def build(out: Path) -> dict[str, dict]:
    """Write every available source into ``out`` (emptied first); return each output's origin record."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    origins: dict[str, dict] = {}
    for name, path, how in SOURCES:
        if not path.is_file():
            print(f"skipped {name}: {path} is not on this machine", file=sys.stderr)
            continue
        target = out / name
        if how == "copy":
            data = path.read_bytes()
            target.write_bytes(manpage.gzip.decompress(data) if path.suffix == ".gz" else data)
        elif target.suffix == ".txt":
            target.write_text(manpage.render(manpage.source(path)), encoding="utf-8")
        else:
            troff = manpage.source(path)
            formats.write(manpage.blocks(troff), _title(troff, path), target)
        origins[name] = {"source": str(path), "package": _package(path), "sha256": _sha256(path)}
        print(f"{name:32} {target.stat().st_size:>9,} bytes  from {path}", file=sys.stderr)
    (out.parent / "sources.json").write_text(json.dumps(origins, indent=1) + "\n", encoding="utf-8")
    return origins


def _title(troff: str, path: Path) -> str:
    """The page's NAME line ("xz, unxz, ... - Compress or decompress .xz and .lzma files"), else its name."""
    rendered = manpage.render(troff).splitlines()
    for number, line in enumerate(rendered):
        if line.strip() == "NAME" and number + 1 < len(rendered):
            return rendered[number + 1].strip()
    return path.name.removesuffix(".gz")


def _package(path: Path) -> str | None:
    """The Debian package and version that installed ``path`` ("xz-utils 5.4.1-1"), if dpkg knows it."""
    try:
        found = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=True).stdout
        package = found.split(":")[0].strip()
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
        ).stdout
        return f"{package} {version}"
    except (OSError, subprocess.CalledProcessError):
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (emptied); sources.json beside it")
    args = parser.parse_args()
    origins = build(args.out)
    print(f"{len(origins)} of {len(SOURCES)} files in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
