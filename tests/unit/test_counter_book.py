"""CounterBook: cumulative counters never go down; a dead replica keeps its totals; a replica
that comes back as a new process carries on from them (by its identity, or a counter that went
down when the meter cannot tell processes apart)."""

from __future__ import annotations

from harness.meter.counters import CounterBook, Counters
from harness.stack.base import Replica

REP = Replica("api", "api-1", "app", None, None, None, None)


def _read(cpu: float, io: int = 0, net: int | None = None) -> Counters:
    return Counters(cpu, 1000, io, io, net, net)


def test_a_dead_replica_keeps_its_totals_and_is_not_alive() -> None:
    book = CounterBook()
    first = book.sample(REP, 1.0, _read(2.0, io=50, net=7), process=1)
    dead = book.sample(REP, 2.0, None)
    assert not dead.alive and first.alive
    assert (dead.cpu_s, dead.io_read_bytes, dead.net_rx_bytes) == (2.0, 50, 7)
    assert dead.rss_bytes == 0


def test_a_new_process_carries_on_from_the_old_totals() -> None:
    book = CounterBook()
    book.sample(REP, 1.0, _read(2.0, io=50, net=7), process=1)
    book.sample(REP, 2.0, None)
    back = book.sample(REP, 3.0, _read(0.5, io=5, net=1), process=2)
    later = book.sample(REP, 4.0, _read(1.5, io=6, net=2), process=2)
    assert (back.cpu_s, back.io_read_bytes, back.net_rx_bytes) == (2.5, 55, 8)
    assert (later.cpu_s, later.io_write_bytes, later.net_tx_bytes) == (3.5, 56, 9)


def test_a_new_process_that_already_passed_the_old_total_is_still_told_apart() -> None:
    book = CounterBook()
    book.sample(REP, 1.0, _read(0.2), process="a")
    assert book.sample(REP, 2.0, _read(0.3), process="b").cpu_s == 0.5


def test_without_an_identity_a_counter_that_went_down_is_a_restart() -> None:
    book = CounterBook()
    book.sample(REP, 1.0, _read(2.0))
    assert book.sample(REP, 2.0, _read(2.5)).cpu_s == 2.5
    assert book.sample(REP, 3.0, _read(0.4)).cpu_s == 2.9


def test_the_same_process_never_goes_down() -> None:
    book = CounterBook()
    book.sample(REP, 1.0, _read(2.0, io=10), process=1)
    again = book.sample(REP, 2.0, _read(2.0, io=10), process=1)
    assert (again.cpu_s, again.io_read_bytes) == (2.0, 10)
