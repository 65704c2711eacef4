"""Analysis at scale: pricing at 1 M and 10 M request records (``bench/ledger_scale.py``), then
``harness report`` on the same run directories (time, CPU, peak memory, report size), and the
report engineer's stage split (``bench/report_size.py``).

    .venv/bin/python bench/analysis_scale.py [--quick] [--repeats 5]

1. ``ledger_scale.py --sizes 1M 10M --keep DIR`` writes synthetic 600 s runs (12 endpoints,
   3 tenants, two app replicas, a cache and a database, full telemetry) and prices each in a
   fresh process (its own table is quoted as printed);
2. ``harness report DIR`` (the CLI: load, price, summary, timeline, render) runs ``--repeats``
   times per size, sizes interleaved, under ``/usr/bin/time``; medians, and each size's ratio
   to the smallest;
3. ``report_size.py`` splits analysis from rendering (10 k and 1 M records).

Goals quoted from the scripts reused: pricing 1 M records in <= 15 s and <= 2 GB; report.html
<= 5 MB at 1 M requests.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from benchlib import BENCH, HARNESS, PYTHON, median, stop_on_sigterm, table, write_section

TIME_FORMAT = "%e %U %S %M"  # wall s, user s, system s, peak RSS KiB


def run_script(name: str, *args: str) -> str:
    """Run ``bench/<name>`` and return what it printed; SystemExit when it fails."""
    done = subprocess.run([PYTHON, str(BENCH / name), *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(done.stdout, flush=True)
    return done.stdout.strip()


def time_report(run_dir: Path) -> dict[str, float]:
    """One ``harness report RUN_DIR`` under /usr/bin/time: wall, CPU, peak RSS, report bytes."""
    done = subprocess.run(["/usr/bin/time", "-f", TIME_FORMAT, HARNESS, "report", str(run_dir)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"harness report {run_dir} failed:\n{done.stdout}\n{done.stderr}")
    wall, user, system, rss_kib = (float(x) for x in done.stderr.strip().splitlines()[-1].split())
    return {"wall_s": wall, "cpu_s": user + system, "rss_mib": rss_kib / 1024,
            "bytes": float((run_dir / "report.html").stat().st_size)}  # fmt: skip


def report_rows(base: Path, sizes: list[int], repeats: int) -> list[list[str]]:
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    for r in range(repeats):
        for n in sizes:
            runs[n].append(time_report(base / f"bench-{n}"))
            print(f"harness report, {n:,} records, repeat {r + 1}/{repeats}: {runs[n][-1]}",
                  flush=True)  # fmt: skip
    med = {n: {k: median([x[k] for x in runs[n]]) for k in runs[n][0]} for n in sizes}
    first = med[sizes[0]]
    return [[f"{n:,}", f"{m['wall_s']:.1f}", f"{m['cpu_s']:.1f}",
             f"{m['cpu_s'] / first['cpu_s']:.2f}", f"{m['rss_mib']:,.0f}",
             f"{m['bytes'] / 1024:,.0f}", "yes" if m["bytes"] <= 5 * 2**20 else "NO"]
            for n, m in med.items()]  # fmt: skip


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 k and 1 M records, once")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        base = Path(name)
        pricing = run_script("ledger_scale.py", "--sizes", *map(str, sizes), "--keep", str(base))
        reports = report_rows(base, sizes, repeats)
    split = run_script("report_size.py", "--sizes", *(("10000", "100000") if args.quick
                                                      else ("10000", "1000000")))  # fmt: skip
    header = ["records", "wall s (median)", "CPU s (median)", "CPU x smallest",
              "peak RSS MiB", "report.html KiB", "<= 5 MB"]  # fmt: skip
    text = (f"Synthetic runs from `ledger_scale.generate` (600 s priced).\n\n**Pricing** "
            "(`ledger_scale.py`: one fresh process per size; wall times stretch on a shared "
            f"machine, CPU s does not):\n\n```\n{pricing}\n```\n\n**`harness report RUN_DIR`** "
            f"on the same directories ({repeats} runs per size, interleaved, medians):\n\n"
            + table(header, reports)
            + f"\n\n**Analysis vs rendering** (`report_size.py`):\n\n```\n{split}\n```")
    print("\n" + text)
    write_section("analysis-scale", "3. Analysis at scale: pricing and `harness report`", text)


if __name__ == "__main__":
    main()
