"""The sample target as a real process on 127.0.0.1: telemetry, stats, signals, shared port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.artifacts.telemetry import parse_server_timing

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0


@dataclass
class Sample:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def cpu_ms(self) -> float:
        cpu = parse_server_timing(self.headers.get("server-timing")).cpu_ms
        assert cpu is not None, self.headers
        return cpu


def request(port: int, path: str, method: str = "GET", body: bytes | None = None) -> Reply:
    """One request on a new connection (so SO_REUSEPORT can pick another replica)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers, response.read())
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


StartSample = Callable[..., Sample]


@pytest.fixture
def start_sample(tmp_path: Path) -> Iterator[StartSample]:
    """``start_sample(port=None, wait=True, **env)``; every process is stopped afterwards."""
    started: list[Sample] = []

    def start(port: int | None = None, wait: bool = True, **env: str) -> Sample:
        port = port or free_port()
        log = tmp_path / f"sample-{len(started)}.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "PORT": str(port), **env}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "targets.sample"],
                env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        sample = Sample(port, proc, log)
        started.append(sample)
        if wait:
            _wait_healthy(sample, env.get("HARNESS_REPLICA"))
        return sample

    try:
        yield start
    finally:
        for sample in started:
            if sample.proc.poll() is None:
                os.killpg(sample.proc.pid, signal.SIGKILL)
            sample.proc.wait(timeout=10)


def _wait_healthy(sample: Sample, replica: str | None) -> None:
    """Wait for ``/health``; with *replica*, for an answer from that replica (the port may be
    shared with a replica already running)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if sample.proc.poll() is not None:
            pytest.fail(f"sample exited with {sample.proc.returncode}:\n{sample.output()}")
        try:
            reply = request(sample.port, "/health")
            if reply.status == 200 and replica in (None, reply.headers["x-served-by"]):
                return
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail(f"sample not healthy after {START_TIMEOUT_S}s:\n{sample.output()}")


def test_endpoints_report_their_cost(start_sample: StartSample) -> None:
    sample = start_sample(HARNESS_REPLICA="sample-a")
    cheap = request(sample.port, "/cheap")
    cpu = request(sample.port, "/cpu?ms=30")
    big = request(sample.port, "/big")
    small = request(sample.port, "/big?kb=3")
    echo = request(sample.port, "/echo", "POST", b"x" * 5000)
    missing = request(sample.port, "/nope")
    bad = request(sample.port, "/cpu?ms=lots")

    assert cheap.status == 200 and 80 <= len(cheap.body) <= 120
    assert cheap.cpu_ms < 3
    assert cpu.status == 200 and 25 <= cpu.cpu_ms < 60
    assert big.status == 200 and len(big.body) == 256 * 1024
    assert big.headers["content-type"] == "application/octet-stream"
    assert small.body == request(sample.port, "/big?kb=3").body and len(small.body) == 3072
    assert echo.body == b'{"bytes":5000}'
    assert (missing.status, bad.status) == (404, 400)
    assert {r.headers["x-served-by"] for r in (cheap, cpu, big, echo, missing)} == {"sample-a"}
    assert "server" not in cheap.headers  # waitress's ident header is off

    stats = request(sample.port, "/stats")
    assert stats.status == 200
    assert stats.body == (
        b'{"served":8,"by_path":{"/cheap":1,"/cpu":2,"/big":3,"/echo":1,"(unknown)":1}}'
    )


def test_sigterm_stops_it_quickly_quietly_and_leaves_its_stats(
    start_sample: StartSample, tmp_path: Path
) -> None:
    stats_file = tmp_path / "served.json"
    sample = start_sample(SAMPLE_STATS_FILE=str(stats_file))
    assert request(sample.port, "/cheap").status == 200
    sample.proc.send_signal(signal.SIGTERM)
    sample.proc.wait(timeout=5)
    assert sample.proc.returncode == 0
    assert sample.output() == ""  # nothing noisy on startup, serving or shutdown
    assert json.loads(stats_file.read_text()) == {"served": 1, "by_path": {"/cheap": 1}}


def test_cpu_factor_scales_the_designed_burn(start_sample: StartSample) -> None:
    sample = start_sample(SAMPLE_CPU_FACTOR="1.3")
    assert 38 <= request(sample.port, "/cpu?ms=30").cpu_ms < 70


def test_serves_concurrent_requests(start_sample: StartSample) -> None:
    sample = start_sample()
    paths = ["/cpu?ms=20"] * 4 + ["/cheap"] * 4
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        replies = list(pool.map(lambda path: request(sample.port, path), paths))
    assert [r.status for r in replies] == [200] * len(paths)
    assert all(19 <= r.cpu_ms < 60 for r in replies[:4])  # thread CPU: no cross-charging
    assert b'"served":8' in request(sample.port, "/stats").body


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": ""}, "PORT must be set"),
        ({"SAMPLE_CPU_FACTOR": "fast"}, "SAMPLE_CPU_FACTOR must be a number"),
    ],
)
def test_bad_configuration_is_one_line_not_a_traceback(
    start_sample: StartSample, env: dict[str, str], message: str
) -> None:
    sample = start_sample(wait=False, **env)
    assert sample.proc.wait(timeout=10) != 0
    assert message in sample.output() and "Traceback" not in sample.output()


def test_a_port_held_without_reuseport_is_a_clear_error(start_sample: StartSample) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        sample = start_sample(port=holder.getsockname()[1], wait=False)
        assert sample.proc.wait(timeout=10) == 3  # TargetError
    assert "cannot listen on 127.0.0.1" in sample.output()
    assert "Traceback" not in sample.output()


def test_two_replicas_share_one_port(start_sample: StartSample) -> None:
    port = free_port()
    first = start_sample(port=port, HARNESS_REPLICA="replica-1")
    second = start_sample(port=port, HARNESS_REPLICA="replica-2")
    served_by = [request(port, "/cheap").headers["x-served-by"] for _ in range(60)]
    assert set(served_by) == {"replica-1", "replica-2"}
    # Each replica counted exactly the requests it answered (stats on a new connection may
    # land on either replica, so ask until each has answered once).
    counts: dict[str, bytes] = {}
    for _ in range(200):
        reply = request(port, "/stats")
        counts.setdefault(reply.headers["x-served-by"], reply.body)
        if len(counts) == 2:
            break
    for replica in ("replica-1", "replica-2"):
        assert f'"served":{served_by.count(replica)},'.encode() in counts[replica]
    assert first.proc.poll() is None and second.proc.poll() is None
