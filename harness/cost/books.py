"""Finding, loading and listing price books.

Books are looked up by name in the directories of ``$HARNESS_PRICE_BOOKS`` (``os.pathsep``
separated; they win over the shipped books) and then in ``harness/cost/pricebooks/``. A
``name_or_path`` containing a path separator or ending in ``.yaml``/``.yml`` is read as a file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from harness.cost.pricebook import PriceBook, apply_overrides, parse_book
from harness.errors import PriceBookError

BUILTIN_DIR = Path(__file__).parent / "pricebooks"
ENV_VAR = "HARNESS_PRICE_BOOKS"
DEFAULT_BOOK = "opencost-default"
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class PriceBookInfo:
    """One line of ``harness price-books``; ``problem`` is set when the book does not load."""

    name: str
    currency: str
    effective_date: date | None
    description: str
    path: str
    builtin: bool
    problem: str | None = None


def _search_dirs() -> list[tuple[Path, bool]]:
    dirs: list[tuple[Path, bool]] = []
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise PriceBookError(f"${ENV_VAR}: {entry!r} is not a directory")
        dirs.append((path, False))
    dirs.append((BUILTIN_DIR, True))
    return dirs


def _index() -> dict[str, tuple[Path, bool]]:
    """Book name (file stem) -> (path, builtin); earlier directories win."""
    found: dict[str, tuple[Path, bool]] = {}
    for directory, builtin in _search_dirs():
        for path in sorted(directory.iterdir()):
            if path.suffix in SUFFIXES and path.stem not in found:
                found[path.stem] = (path, builtin)
    return found


def _unknown(name: str, index: Mapping[str, Any]) -> PriceBookError:
    names = sorted(index)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return PriceBookError(
        f"unknown price book {name!r}{hint}; available: {', '.join(names)} "
        f"(add your own as a YAML file path or in a ${ENV_VAR} directory)"
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceBookError(f"price book {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PriceBookError(f"price book {path}:{line}: invalid YAML ({problem})") from exc


def _load_file(
    path: Path, index: Mapping[str, tuple[Path, bool]], seen: tuple[str, ...]
) -> PriceBook:
    """Load one file; ``seen`` = the names on the extends chain (empty for an explicit path)."""
    raw = _read_yaml(path)
    base: PriceBook | None = None
    parent = raw.get("extends") if isinstance(raw, Mapping) else None
    if parent is not None:
        if not isinstance(parent, str) or parent not in index:
            raise PriceBookError(f"price book {path}: extends: {_unknown(str(parent), index)}")
        if parent in seen:
            chain = " -> ".join([*seen, parent])
            raise PriceBookError(f"price book {path}: extends forms a cycle ({chain})")
        base = _load_file(index[parent][0], index, (*seen, parent))
    book = parse_book(raw, str(path), base, str(path))
    if seen and book.name != path.stem:  # found by name: the name must match the file
        raise PriceBookError(
            f"price book {path}: name {book.name!r} differs from the file name {path.stem!r}"
        )
    return book


def load_price_book(
    name_or_path: str | None = None, overrides: Mapping[str, Any] | None = None
) -> PriceBook:
    """Load a book by name or path, validate it and apply ``overrides`` (see pricebook.py)."""
    wanted = name_or_path or DEFAULT_BOOK
    index = _index()
    if os.sep in wanted or "/" in wanted or wanted.endswith(SUFFIXES):
        path = Path(wanted).expanduser()
        if not path.is_file():
            raise PriceBookError(f"price book {wanted}: no such file")
        book = _load_file(path, index, ())
    elif wanted in index:
        path = index[wanted][0]
        book = _load_file(path, index, (wanted,))
    else:
        raise _unknown(wanted, index)
    return apply_overrides(book, overrides) if overrides else book


def list_price_books() -> list[PriceBookInfo]:
    """Every book found, shipped and user-supplied; broken books are listed with their problem."""
    infos: list[PriceBookInfo] = []
    index = _index()
    for name, (path, builtin) in sorted(index.items()):
        try:
            book = _load_file(path, index, (name,))
        except PriceBookError as exc:
            infos.append(PriceBookInfo(name, "", None, "", str(path), builtin, str(exc)))
            continue
        infos.append(
            PriceBookInfo(
                book.name, book.currency, book.effective_date, book.description, str(path), builtin
            )
        )
    return infos
