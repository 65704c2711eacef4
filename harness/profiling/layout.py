"""The on-disk layout of ``RUN_DIR/profiles/`` and its index.

::

    profiles/
      index.json                          what is stored (ProfileIndex), rewritten atomically
      <service>/<phase>/<endpoint>.folded  "frame;frame;frame <CPU nanoseconds>" per line
      <service>/<phase>/<endpoint>.pb.gz   the same stacks as a gzipped pprof (lines kept;
                                          rewritten once a minute and when the run stops)

Names are percent-encoded (``GET /items`` → ``GET%20%2Fitems``), so any label is a safe
file name; the index maps the files back to the real names.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ArtifactError

__all__ = ["INDEX", "PROFILES_DIR", "ProfileEntry", "ProfileIndex", "load_index", "slug"]

PROFILES_DIR = "profiles"
INDEX = "index.json"
MAX_SLUG = 120


class ProfileEntry(BaseModel):
    """One service × phase × endpoint: its files (relative to ``profiles/``) and CPU."""

    model_config = ConfigDict(extra="forbid")
    service: str
    phase: str
    endpoint: str
    cpu_s: float
    uploads: int
    folded: str
    pprof: str | None  # None until the merged pprof is first written
    first_arrival: float  # Unix seconds of the first and last upload stored here
    last_arrival: float


class ProfileIndex(BaseModel):
    """``profiles/index.json``."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    phase_stamping: str = "arrival"  # each upload takes the phase current when it arrives
    uploads: int = 0  # profiles stored
    skipped: int = 0  # uploads of profile types the harness does not store (memory, …)
    rejected: int = 0  # requests answered 4xx
    last_rejection: str | None = None
    entries: list[ProfileEntry] = []


def slug(name: str) -> str:
    """A file-name-safe, reversible (unless very long) spelling of ``name``."""
    text = quote(name, safe="()@=,+") or "%00"
    if text.startswith("."):
        text = "%2E" + text[1:]
    if len(text) > MAX_SLUG:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
        text = f"{text[:MAX_SLUG - 13]}~{digest}"
    return text


def load_index(profiles_dir: Path) -> ProfileIndex:
    """Read ``profiles/index.json``; an absent directory means no profiles were recorded."""
    if not profiles_dir.exists():
        return ProfileIndex()
    path = profiles_dir / INDEX
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ProfileIndex.model_validate(raw)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: missing; {profiles_dir} holds no profile index") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable or truncated JSON ({exc})") from exc
    except ValidationError as exc:
        raise ArtifactError(f"{path}: not a profile index ({exc.errors()[0]['msg']})") from exc
