"""Property: attributed + unattributed = the metered total, whatever the run looks like."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from artifact_factory import GIB, request, samples, service, write_book, write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.artifacts.rundata import load_run
from harness.cost import build_ledger, load_price_book
from harness.cost.breakdown import request_costs

PRICES = {
    "vcpu_second": (0.001, "USD/vCPU-second"),
    "memory_gib_second": (0.0001, "USD/GiB-second"),
    "request": (0.2, "USD/1M-requests"),
    "egress_gb": (0.1, "USD/GB"),
    "cache_op": (1.0, "USD/1M-operations"),
    "db_read": (0.25, "USD/1M-read-units"),
    "db_write": (1.25, "USD/1M-write-units"),
}
PHASES = (("steady", 0.0, 6.0, True), ("fault", 6.0, 12.0, True))


@st.composite
def replicas(draw: st.DrawFn, name: str, role: str) -> list[dict[str, Any]]:
    """One or two replicas sampled each second over [0, 12], with counter resets and deaths."""
    out: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 2))):
        gains = draw(st.lists(st.floats(0, 2), min_size=12, max_size=12))
        cpu, total = [0.0], 0.0
        for gain in gains:
            reset = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
            total = gain if reset else total + gain
            cpu.append(total)
        rss = draw(st.integers(0, 4 * GIB))
        rows = samples(name, [float(t) for t in range(13)], cpu, rss, f"{name}-{index}", role)
        for row in rows:
            row["alive"] = draw(st.integers(0, 9)) > 0
        out += rows
    return out


@st.composite
def requests(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 25))
    out = []
    for _ in range(count):
        start = draw(st.floats(0, 11.9))
        measured = draw(st.booleans())
        out.append(
            request(
                start,
                draw(st.sampled_from(["/a", "/b", "/c"])),
                draw(st.floats(0.1, 900)),
                phase="steady" if start < 6 else "fault",
                tenant=draw(st.sampled_from([None, "acme", "globex"])),
                cpu_ms=draw(st.floats(0, 400)) if measured else None,
                bytes_out=draw(st.integers(0, 10**7)),
                cache_hits=draw(st.integers(0, 3)),
                db_reads=draw(st.one_of(st.none(), st.integers(0, 3))),
                db_writes=draw(st.integers(0, 2)),
            )
        )
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    app=replicas("api", "app"),
    cache=replicas("cache", "cache"),
    reqs=requests(),
    billing=st.sampled_from(["instance", "usage", "serverless"]),
    cpu=st.one_of(st.none(), st.floats(0.25, 4)),
)
def test_attributed_plus_unattributed_is_the_metered_total(
    app: list[dict[str, Any]],
    cache: list[dict[str, Any]],
    reqs: list[dict[str, Any]],
    billing: str,
    cpu: float | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        services = [
            service("api", entry=True, billing=billing, cpu=cpu, memory=GIB),
            service("cache", "cache", billing=billing),
        ]
        run_dir = write_run(Path(tmp) / "run", reqs, app + cache, services, PHASES)
        book = load_price_book(str(write_book(Path(tmp), prices=PRICES)))
        run = load_run(run_dir)
        ledger = build_ledger(run, book)
    rows = ledger.rows
    metered = sum(a.cost for a in ledger.allocations)
    total = ledger.totals["total"]
    assert total == pytest.approx(metered, rel=0.01, abs=1e-12)
    assert ledger.totals["attributed"] + ledger.totals["unattributed"] == pytest.approx(total)
    assert rows["x_FullCost"].sum() == pytest.approx(total, rel=0.01, abs=1e-12)
    assert (rows["EffectiveCost"] >= -1e-15).all()
    if billing == "usage":  # independent check: Σ counter gains and RSS x alive time
        assert total == pytest.approx(_usage_total(app + cache, reqs), rel=1e-9, abs=1e-15)
    spread = request_costs(ledger)["full_cost"].sum()
    unspread = sum(a.cost for a in ledger.allocations if a.total_weight <= 0)
    assert spread + unspread == pytest.approx(total, rel=0.01, abs=1e-12)


def _usage_total(usage: list[dict[str, Any]], reqs: list[dict[str, Any]]) -> float:
    """Usage billing by hand: CPU gains ($0.001/s), RSS x alive ($0.0001/GiB-s), egress, and the
    reads/writes of the managed database (no database service in the stack)."""
    reads = sum(r["db_reads"] or 0 for r in reqs) * 0.25e-6
    writes = sum(r["db_writes"] for r in reqs) * 1.25e-6
    total = reads + writes
    for one, nxt in zip(usage, usage[1:], strict=False):
        if one["replica"] != nxt["replica"]:
            continue
        gain = nxt["cpu_s"] - one["cpu_s"]
        total += (gain if gain >= 0 else nxt["cpu_s"]) * 0.001
        total += (one["rss_bytes"] / GIB * 0.0001) if one["alive"] else 0.0
    return total + sum(r["bytes_out"] for r in reqs) / 1e9 * 0.1
