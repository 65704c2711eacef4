"""Named baselines, and resolving what ``compare``/``gate`` arguments name.

``harness baseline save NAME RUN_DIR...`` writes ``baselines/NAME/`` — small and git-friendly:

* ``windows.jsonl`` — line 1 a header (format, pricing, latency bins, the runs), then one line
  per window: calls, errors, cost by category and sparse latency histograms per endpoint (see
  :mod:`harness.compare.windows`). This is all the gate needs to compute its intervals.
* ``summary.json`` — the first run's summary, priced like the windows;
* ``manifest.json`` — the first run's manifest, with secret-looking environment values redacted.

An argument names a run directory (it has ``manifest.json``), a baseline directory (it has
``windows.jsonl``) or a baseline name (``baselines/NAME``).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.artifacts import SUMMARY, Manifest, write_manifest
from harness.compare.windows import (
    BINS_PER_DECADE,
    LATENCY_MIN_MS,
    N_BINS,
    Pricing,
    RunWindows,
    price_run,
)
from harness.errors import InputError
from harness.report.summary import build_summary, write_summary
from harness.util import atomic_write_text

BASELINES_DIR = Path("baselines")
WINDOWS = "windows.jsonl"
FORMAT = "cost-harness-windows/1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SECRET = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)


class BaselineError(InputError):
    """A baseline name, directory or file cannot be used."""


@dataclass(frozen=True)
class Source:
    """What one argument names, loaded: one run, or the runs of a stored baseline."""

    path: Path
    kind: Literal["run", "baseline"]
    runs: tuple[RunWindows, ...]
    statuses: tuple[str, ...]
    pricing: Pricing
    manifest: Manifest

    @property
    def label(self) -> str:
        return self.path.name or str(self.path)


def _sig(value: float) -> float:
    return float(f"{value:.6g}")


def _window_line(run: int, w: RunWindows, i: int) -> str:
    lat = []
    for e in range(len(w.endpoints)):
        bins = np.flatnonzero(w.latency[i, e])
        lat.append([int(v) for b in bins for v in (b, w.latency[i, e, b])])
    line = {
        "run": run,
        "s": round(float(w.seconds[i]), 4),
        "calls": [int(c) for c in w.calls[i]],
        "errors": [int(c) for c in w.errors[i]],
        "cost": [[_sig(float(c)) for c in row] for row in w.cost[i]],
        "lat": lat,
    }
    return json.dumps(line, separators=(",", ":"))


def dump_windows(runs: Sequence[tuple[RunWindows, str]], pricing: Pricing,
                 scenario: str) -> str:  # fmt: skip
    """The ``windows.jsonl`` text of ``runs`` ((windows, status) pairs)."""
    header = {
        "format": FORMAT,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": scenario,
        "price_book": pricing.price_book,
        "billing_model": pricing.billing_model,
        "currency": pricing.currency,
        "latency": {"min_ms": LATENCY_MIN_MS, "bins_per_decade": BINS_PER_DECADE},
        "runs": [
            {"run_id": w.run_id, "status": status, "endpoints": list(w.endpoints),
             "categories": list(w.categories), "windows": w.n_windows}
            for w, status in runs
        ],  # fmt: skip
    }
    lines = [json.dumps(header)]
    for index, (w, _) in enumerate(runs):
        lines += [_window_line(index, w, i) for i in range(w.n_windows)]
    return "\n".join(lines) + "\n"


def _header(path: Path, lines: list[str]) -> dict[str, Any]:
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: line 1 is not JSON ({exc.msg})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BaselineError(f"{path}: not a baseline windows file (expected format {FORMAT})")
    latency = header.get("latency") or {}
    if latency != {"min_ms": LATENCY_MIN_MS, "bins_per_decade": BINS_PER_DECADE}:
        raise BaselineError(f"{path}: latency bins {latency} differ from this harness's")
    return header


def _run_arrays(meta: dict[str, Any], rows: list[dict[str, Any]]) -> RunWindows:
    endpoints, categories = list(meta["endpoints"]), list(meta["categories"])
    latency = np.zeros((len(rows), len(endpoints), N_BINS))
    for i, row in enumerate(rows):
        for e, flat in enumerate(row["lat"]):
            latency[i, e, flat[0::2]] = flat[1::2]
    shape = (len(rows), len(endpoints), len(categories))
    return RunWindows(
        run_id=str(meta["run_id"]),
        endpoints=tuple(endpoints),
        categories=tuple(categories),
        seconds=np.array([float(r["s"]) for r in rows]),
        calls=np.array([r["calls"] for r in rows], dtype=float).reshape(shape[:2]),
        errors=np.array([r["errors"] for r in rows], dtype=float).reshape(shape[:2]),
        cost=np.array([r["cost"] for r in rows], dtype=float).reshape(shape),
        latency=latency,
    )


def read_windows(path: Path) -> tuple[dict[str, Any], list[RunWindows]]:
    """(header, runs) of a ``windows.jsonl`` file, or BaselineError naming the problem."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: unreadable ({exc})") from exc
    header = _header(path, lines)
    metas = header.get("runs") or []
    rows: list[list[dict[str, Any]]] = [[] for _ in metas]
    for number, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
            rows[int(row["run"])].append(row)
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise BaselineError(f"{path}: line {number} is damaged ({exc})") from exc
    try:
        runs = [_run_arrays(meta, run_rows) for meta, run_rows in zip(metas, rows, strict=True)]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BaselineError(f"{path}: inconsistent windows ({exc})") from exc
    if not runs or any(r.n_windows != int(m["windows"]) for r, m in zip(runs, metas, strict=True)):
        raise BaselineError(f"{path}: truncated (fewer windows than its header lists)")
    return header, runs


def redact(manifest: Manifest) -> Manifest:
    """A copy whose services' secret-looking environment values read ``<redacted>``."""
    scenario = json.loads(json.dumps(manifest.scenario))
    for service in ((scenario.get("target") or {}).get("services") or {}).values():
        env = service.get("env") if isinstance(service, dict) else None
        if isinstance(env, dict):
            env.update({key: "<redacted>" for key in env if _SECRET.search(key)})
    return manifest.model_copy(update={"scenario": scenario})


def resolve(argument: str | Path, root: Path = BASELINES_DIR) -> Path:
    """The directory an argument names: itself, or ``root/NAME``; BaselineError if neither."""
    path = Path(argument)
    if path.is_dir():
        return path
    named = root / str(argument)
    if _NAME.fullmatch(str(argument)) and named.is_dir():
        return named
    known = ", ".join(sorted(p.name for p in root.glob("*/") if (p / WINDOWS).is_file()))
    hint = f" (baselines in {root}: {known})" if known else ""
    raise BaselineError(f"{argument}: no such run directory or baseline{hint}")


def _stored(path: Path) -> Source:
    header, runs = read_windows(path / WINDOWS)
    pricing = Pricing(str(header.get("price_book")), header.get("billing_model"),
                      str(header.get("currency")))  # fmt: skip
    statuses = tuple(str(m.get("status")) for m in header["runs"])
    return Source(path, "baseline", tuple(runs), statuses, pricing, _manifest(path))


def _manifest(path: Path) -> Manifest:
    from harness.artifacts import read_manifest

    return read_manifest(path)


def _run(path: Path, price_book: str | None, billing_model: str | None) -> Source:
    priced = price_run(path, price_book, billing_model)
    manifest = priced.run.manifest
    return Source(path, "run", (priced.windows,), (manifest.status,), priced.pricing, manifest)


def _pricing_of(stored: Sequence[Source], price_book: str | None,
                billing_model: str | None) -> tuple[str | None, str | None]:  # fmt: skip
    """The book and billing model runs are priced with: the command line's, else the stored
    baselines' (which must then agree with it)."""
    for source in stored:
        given = (price_book or source.pricing.price_book,
                 billing_model if billing_model is not None else source.pricing.billing_model)
        if given != (source.pricing.price_book, source.pricing.billing_model):
            raise BaselineError(
                f"{source.path} was priced with {_describe(source.pricing)}, not "
                f"{given[0]} / {given[1] or 'per-service'} billing; save it again with "
                "that pricing or drop --price-book/--billing-model"
            )
        price_book, billing_model = given
    return price_book, billing_model


def _describe(pricing: Pricing) -> str:
    return f"{pricing.price_book} / {pricing.billing_model or 'per-service'} billing"


def load_sources(arguments: Sequence[str | Path], price_book: str | None = None,
                 billing_model: str | None = None,
                 root: Path = BASELINES_DIR) -> list[Source]:  # fmt: skip
    """Load every argument, all priced alike: with ``price_book``/``billing_model`` when given,
    else like the stored baselines among them, else with the first run's price book."""
    paths = [resolve(a, root) for a in arguments]
    stored = {p: _stored(p) for p in paths if (p / WINDOWS).is_file()}
    book, model = _pricing_of(list(stored.values()), price_book, billing_model)
    if book is None and paths:
        book = _manifest(paths[0]).price_book
    sources = [stored[p] if p in stored else _run(p, book, model) for p in paths]
    first = sources[0].pricing if sources else None
    for source in sources:
        if first is not None and source.pricing != first:
            raise BaselineError(
                f"{source.path} is priced with {_describe(source.pricing)} in "
                f"{source.pricing.currency}, {sources[0].path} with {_describe(first)} in "
                f"{first.currency}: costs cannot be compared"
            )
    return sources


def save_baseline(name: str, run_dirs: Sequence[Path], root: Path = BASELINES_DIR,
                  price_book: str | None = None, billing_model: str | None = None,
                  force: bool = False) -> Path:  # fmt: skip
    """Write ``root/NAME`` from completed runs (replacing it only with ``force``)."""
    if not _NAME.fullmatch(name):
        raise BaselineError(f"baseline name {name!r} must match [A-Za-z0-9][A-Za-z0-9._-]*")
    target = root / name
    if target.exists() and not force:
        raise BaselineError(f"{target} exists; use --force to replace it")
    book = price_book or (_manifest(run_dirs[0]).price_book if run_dirs else None)
    priced = [price_run(Path(d), book, billing_model) for d in run_dirs]
    for run_dir, item in zip(run_dirs, priced, strict=True):
        if item.run.manifest.status != "completed":
            raise BaselineError(f"{run_dir}: status {item.run.manifest.status}; "
                                "a baseline must be made of completed runs")  # fmt: skip
    first = priced[0]
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        runs = [(p.windows, p.run.manifest.status) for p in priced]
        scenario = first.run.manifest.scenario_name
        atomic_write_text(tmp / WINDOWS, dump_windows(runs, first.pricing, scenario))
        write_summary(tmp, build_summary(first.run, first.ledger))
        write_manifest(tmp, redact(first.run.manifest))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except OSError as exc:
        raise BaselineError(f"{target}: cannot be written ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class BaselineInfo:
    """One line of ``harness baseline list``."""

    name: str
    scenario: str
    runs: int
    windows: int
    requests: int | None
    cost_per_call: float | None
    pricing: str
    saved_at: str
    size_bytes: int


def list_baselines(root: Path = BASELINES_DIR) -> list[BaselineInfo]:
    """The baselines under ``root`` (a damaged one raises BaselineError naming it)."""
    out = []
    for path in sorted(p for p in root.glob("*") if (p / WINDOWS).is_file()):
        header, runs = read_windows(path / WINDOWS)
        try:
            summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = {}
        out.append(BaselineInfo(
            name=path.name,
            scenario=str(header.get("scenario")),
            runs=len(runs),
            windows=sum(r.n_windows for r in runs),
            requests=sum(int(r.calls.sum()) for r in runs),
            cost_per_call=summary.get("cost_per_call_usd"),
            pricing=f"{header.get('price_book')} / {header.get('billing_model') or 'per-service'}",
            saved_at=str(header.get("saved_at")),
            size_bytes=sum(f.stat().st_size for f in path.iterdir() if f.is_file()),
        ))  # fmt: skip
    return out
