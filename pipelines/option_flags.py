"""Command-line flags made from an options dataclass (the reader's ``ReadOptions``): one flag per field, typed
and explained by the field itself (``metadata["help"]``), so a field added to the dataclass is a flag at once.

Every flag defaults to "not given"; ``given`` returns what the user did give, as keyword arguments for
``dataclasses.replace`` on whichever options apply (the dataclass's defaults, or a pipeline's).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

#: Field types a flag can take, and how argparse reads them.
_READERS: dict[type, Any] = {int: int, float: float, str: str, Path: Path}
_METAVARS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, options: type, defaults: Any | None = None, title: str | None = None) -> None:
    """A flag for each field of the dataclass ``options``, in a group named ``title``. The help says the field's
    default from ``defaults`` (an instance), or, without one, that the default is the pipeline's."""
    group = parser.add_argument_group(title)
    for field, kind in _fields(options):
        said = field.metadata.get("help", field.name.replace("_", " "))
        default = f"default: {getattr(defaults, field.name)}" if defaults is not None else "default: the pipeline's"
        help_text = f"{said} ({default})".replace("%", "%%")
        if kind is bool:
            group.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag(field.name), type=_READERS[kind], default=None, metavar=_METAVARS[kind], help=help_text)


def given(args: argparse.Namespace, options: type) -> dict[str, Any]:
    """The fields of ``options`` whose flags were given, with their values."""
    return {f.name: getattr(args, f.name) for f, _ in _fields(options) if getattr(args, f.name, None) is not None}


def _fields(options: type) -> list[tuple[dataclasses.Field, type]]:
    """Each field with the type its flag reads: ``X | None`` reads an X. A type no flag can read is an error
    naming the field, so a new field of such a type is noticed where it is added."""
    hints = typing.get_type_hints(options)
    found = []
    for field in dataclasses.fields(options):
        kind = hints[field.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kinds = [k for k in typing.get_args(kind) if k is not type(None)]
            kind = kinds[0] if len(kinds) == 1 else kind
        if kind is not bool and kind not in _READERS:
            raise TypeError(f"{options.__name__}.{field.name}: a flag cannot read type {kind}")
        found.append((field, kind))
    return found
