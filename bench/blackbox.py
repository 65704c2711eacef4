"""Black-box attribution: per-endpoint CPU per call vs truth, by run length.

    .venv/bin/python bench/blackbox.py [--lengths 20,30,60,120,240] [--runtime local|docker]

Each length is one real ``harness run scenarios/blackbox.yaml --duration L`` against
``targets.blackbox``: an HTTP server that sends no telemetry at all and whose calls burn 0, 2,
5 and 10 ms of CPU. The truth is what the target counted per path with its threads' CPU clock
(request parsing and writing included), written to the run directory at exit. From each run's
artifacts, side by side:

* regression: the summary's fitted CPU ms per call (designed mix, NNLS), its 95 % interval;
* latency split (what the harness did before): the metered CPU of the priced window split by
  each endpoint's share of the summed latency;
* even split: the same CPU split evenly over the calls.

Goal: regression within ±10 % of the truth for endpoints >= 2 ms, intervals that narrow as
the run gets longer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from benchlib import HARNESS, ROOT, stop_on_sigterm, table, write_section

SCENARIO = ROOT / "scenarios" / "blackbox.yaml"


def run_once(run_dir: Path, length: int, runtime: str) -> None:
    done = subprocess.run([HARNESS, "run", str(SCENARIO), "--duration", str(length),
                           "--runtime", runtime, "--output", str(run_dir)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"harness run failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")  # fmt: skip


def truth(run_dir: Path) -> dict[str, float]:
    by_path = json.loads((run_dir / "truth.json").read_text())["by_path"]
    return {p: v["cpu_ms"] / v["calls"] for p, v in by_path.items()}


def naive_splits(run_dir: Path) -> pd.DataFrame:
    """CPU ms per call per endpoint by latency share and evenly, from the same artifacts."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    phase = next(p for p in manifest["phases"] if p["priced"])
    usage = pd.read_parquet(run_dir / "usage.parquet")
    inside = usage[(usage["ts"] >= phase["start"]) & (usage["ts"] <= phase["end"])]
    metered_ms = sum(g["cpu_s"].max() - g["cpu_s"].min()
                     for _, g in inside.groupby("replica")) * 1000.0
    requests = pd.read_parquet(run_dir / "requests.parquet").query("phase == @phase['name']")
    sums = requests.groupby("endpoint")["latency_ms"].agg(["sum", "count"])
    latency = metered_ms * sums["sum"] / sums["sum"].sum() / sums["count"]
    even = pd.Series(metered_ms / sums["count"].sum(), index=sums.index)
    return pd.DataFrame({"latency": latency, "even": even})


def rows_of(run_dir: Path, length: int) -> list[dict[str, Any]]:
    summary = json.loads((run_dir / "summary.json").read_text())
    real, naive = truth(run_dir), naive_splits(run_dir)
    out = []
    for e in summary["endpoints"]:
        path = "/" + e["name"].split("/")[1]
        est = e["cpu_ms_per_call"] if e["cpu_ms_source"] == "regression" else float("nan")
        low, high = e["cpu_ms_ci95"] or (float("nan"), float("nan"))
        out.append({"length": length, "endpoint": e["name"], "truth": real[path], "est": est,
                    "low": low, "high": high, "latency": naive.loc[e["name"], "latency"],
                    "even": naive.loc[e["name"], "even"]})
    return out


def pct(value: float, truth: float) -> str:
    return f"{(value - truth) / truth * 100:+.1f} %"


def _fitted(r: Any) -> tuple[str, str, str, str]:
    if r.est != r.est:  # NaN: no usable fit
        return ("not fitted", "–", "–", "–")
    half = f"±{(r.high - r.low) / 2 / r.est * 100:.1f} %" if r.est > 0 else "–"
    return (f"{r.est:.3f}", f"[{r.low:.3f}, {r.high:.3f}]", half, pct(r.est, r.truth))


def render(rows: list[dict[str, Any]], fits: list[tuple[int, dict[str, Any]]],
           runtime: str) -> str:
    frame = pd.DataFrame(rows).sort_values(["length", "truth"])
    lines = [f"Runtime **{runtime}**; one `harness run scenarios/blackbox.yaml --duration L` per "
             "length (open model, 40 req/s asked, designed mix of 3 s windows).", ""]
    body = [(f"{r.length} s", r.endpoint, f"{r.truth:.3f}", *_fitted(r),
             pct(r.latency, r.truth), pct(r.even, r.truth))
            for r in frame.itertuples()]  # fmt: skip
    lines.append(table(["measured", "endpoint", "truth ms", "regression ms", "95 % interval",
                        "half-width", "regression error", "latency split", "even split"], body))
    warnings = [f"{length} s: {fit['warning']}" for length, fit in fits if not fit["usable"]]
    if warnings:
        lines += ["", "Not fitted (the harness said why and split the CPU evenly): "
                  + "; ".join(warnings)]
    heavy = frame[(frame["truth"] >= 2.0) & frame["est"].notna()]
    worst = heavy.assign(err=(heavy["est"] - heavy["truth"]).abs() / heavy["truth"])
    lines += ["", "Worst regression error for endpoints >= 2 ms, by length: " + ", ".join(
        f"{length} s {g['err'].max() * 100:.1f} %" for length, g in worst.groupby("length")),
        "Mean half-width of the interval (>= 2 ms), by length: " + ", ".join(
        f"{length} s ±{((g['high'] - g['low']) / 2 / g['est']).mean() * 100:.1f} %"
        for length, g in heavy.groupby("length"))]
    return "\n".join(lines)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="20,30,60,120,240")
    parser.add_argument("--runtime", choices=["local", "docker"], default="local")
    parser.add_argument("--keep", type=Path, help="keep run directories here")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    fits: list[tuple[int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-blackbox-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        for length in (int(x) for x in args.lengths.split(",")):
            run_dir = tmp / f"run-{args.runtime}-{length}"
            run_once(run_dir, length, args.runtime)
            rows += rows_of(run_dir, length)
            summary = json.loads((run_dir / "summary.json").read_text())
            fits += [(length, fit) for fit in summary["blackbox"]]
            print(f"{length} s done", flush=True)
    text = render(rows, fits, args.runtime)
    print("\n" + text)
    section = "blackbox" if args.runtime == "local" else f"blackbox-{args.runtime}"
    write_section(section, f"9. Black-box attribution ({args.runtime} runtime)", text)


if __name__ == "__main__":
    main()
