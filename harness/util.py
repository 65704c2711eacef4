"""Small helpers shared by several stages: atomic writes, free ports, bounded gunzip."""

from __future__ import annotations

import json
import os
import socket
import zlib
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class InflateError(ValueError):
    """A gzip stream that is corrupt, cut short, or (``too_large``) inflates past its limit."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def gunzip_bounded(data: bytes, limit: int, noun: str = "data") -> tuple[bytes, bytes]:
    """The first gzip member of ``data`` inflated to at most ``limit`` bytes (a gzip bomb
    stops there), and the bytes after it; InflateError names ``noun`` in its message."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InflateError(f"corrupt gzip {noun} ({exc})") from exc
    if len(out) > limit:
        raise InflateError(f"gzip {noun} inflates past {limit} bytes", too_large=True)
    if not inflater.eof:
        raise InflateError(f"truncated gzip {noun} (the stream ends early)")
    return out, inflater.unused_data
