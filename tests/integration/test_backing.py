"""The backing services start from ``launch_spec`` as real servers and stop cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis

from harness.errors import MeteringError, TargetError
from harness.stack.backing import BackingKind, is_ready, launch_spec, server_stats

Runner = Callable[..., AbstractContextManager[Any]]
URLS = {
    "valkey": "redis://127.0.0.1:{port}/0",
    "postgres": "postgresql://postgres@127.0.0.1:{port}/postgres",
}


@pytest.mark.parametrize("kind", ["valkey", "postgres"])
def test_starts_answers_and_stops_cleanly(
    kind: BackingKind, tmp_path: Path, backing_runner: Runner
) -> None:
    started = time.monotonic()
    with backing_runner(kind, tmp_path) as server:
        print(f"{kind}: init + start + ready in {time.monotonic() - started:.2f}s")
        assert is_ready(kind, server.port)
        assert server.url == URLS[kind].format(port=server.port)
        proc = server.proc
    assert proc.exit_code() == 0, proc.tail()  # a clean shutdown, not the SIGKILL fallback
    assert not is_ready(kind, server.port)
    assert not server.data_dir.exists()


def test_valkey_stops_on_sigterm_and_postgres_spec_says_sigint(tmp_path: Path) -> None:
    # PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to leave.
    assert launch_spec("valkey", 6379, tmp_path / "vk").stop_signal == signal.SIGTERM
    assert launch_spec("postgres", 5432, tmp_path / "pg").stop_signal == signal.SIGINT


def test_postgres_stops_with_a_client_still_connected(
    tmp_path: Path, backing_runner: Runner
) -> None:
    with (
        backing_runner("postgres", tmp_path) as server,
        psycopg.connect(server.url, autocommit=True),
    ):
        started = time.monotonic()
        server.proc.stop()  # spec.stop_signal, then SIGKILL after a grace period
        assert server.proc.exit_code() == 0, server.proc.tail()
        assert time.monotonic() - started < 3


def test_postgres_runs_unprivileged_in_a_private_dir(
    tmp_path: Path, backing_runner: Runner
) -> None:
    private = Path(tempfile.mkdtemp(prefix="harness-private-"))  # 0700, like the runtime's
    try:
        with backing_runner("postgres", tmp_path, private) as server:
            with psycopg.connect(server.url) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
            assert row == (str(server.data_dir),)
            if os.geteuid() == 0:
                assert psutil.Process(server.proc.pid).uids().real != 0
                assert server.data_dir.stat().st_uid != 0
                mode = private.stat().st_mode
                assert mode & stat.S_IXOTH and not mode & stat.S_IROTH  # traversable only
        assert not server.data_dir.exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_valkey_stats_count_hits_and_misses(tmp_path: Path, backing_runner: Runner) -> None:
    with backing_runner("valkey", tmp_path) as server:
        before = server.stats()
        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
            for key in ("k", "k", "absent"):
                client.get(key)
        after = server.stats()
    assert after["keyspace_hits"] - before["keyspace_hits"] == 2
    assert after["keyspace_misses"] - before["keyspace_misses"] == 1
    assert after["total_commands_processed"] > before["total_commands_processed"]


def test_postgres_stats_count_scans_and_inserts(tmp_path: Path, backing_runner: Runner) -> None:
    with backing_runner("postgres", tmp_path) as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
            conn.execute("SET enable_seqscan = off")
            for key in (1, 2, 3):
                conn.execute("SELECT v FROM t WHERE id = %s", (key,)).fetchall()
        deadline = time.monotonic() + 5  # a backend publishes its counts as it exits
        while (stats := server.stats())["t.idx_scan"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stats["t.idx_scan"] == 3
    assert stats["t.n_tup_ins"] == 2
    assert stats["n_tup_ins"] >= 2 and stats["xact_commit"] > 0


@pytest.mark.parametrize("kind", ["valkey", "postgres"])
def test_unwritable_data_dir_is_a_target_error(kind: BackingKind, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(
        TargetError, match=rf"^{kind}: data dir .*a-file/data is not a writable directory"
    ):
        launch_spec(kind, 6379, blocker / "data")


def test_foreign_postgres_data_dir_is_a_target_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone's files")
    with pytest.raises(TargetError, match=r"^postgres: data dir .* is not empty"):
        launch_spec("postgres", 5432, tmp_path)


@pytest.mark.parametrize("kind", ["valkey", "postgres"])
def test_nothing_listening_is_not_ready_and_stats_fail_cleanly(
    kind: BackingKind, free_port: int
) -> None:
    assert is_ready(kind, free_port) is False
    with pytest.raises(MeteringError, match=f"^{kind} on 127.0.0.1:{free_port}"):
        server_stats(kind, free_port)
