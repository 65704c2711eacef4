"""The local meter reads real process trees from /proc: CPU of children and grandchildren,
exited children's CPU kept, a dead or reused pid reported as not alive."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from harness.meter.process import ProcessMeter, descendants, read_stat
from harness.stack.base import Replica

# A parent that starts a CPU-burning grandchild through a child, then idles.
TREE = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\n"
inner = ("import subprocess, sys, time; "
         f"p = subprocess.Popen([sys.executable, '-c', {burn!r}]); time.sleep(30)")
subprocess.Popen([sys.executable, '-c', inner])
time.sleep(30)
"""


def _replica(pid: int | None) -> Replica:
    return Replica("api", "api-1", "app", pid, None, None, None)


def test_tree_cpu_and_memory_match_psutil() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        deadline = time.time() + 20
        while time.time() < deadline and len(descendants(proc.pid)) < 2:
            time.sleep(0.05)
        time.sleep(1.2)  # the grandchild has burnt its 0.6 s
        [sample] = ProcessMeter(lambda: [_replica(proc.pid)]).sample()
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        truth = sum(p.cpu_times().user + p.cpu_times().system + p.cpu_times().children_user
                    + p.cpu_times().children_system for p in tree)
        assert sorted(descendants(proc.pid)) == sorted(p.pid for p in tree[1:])
        assert sample.alive
        assert sample.cpu_s >= 0.55
        assert abs(sample.cpu_s - truth) <= 0.05
        assert abs(sample.rss_bytes - sum(p.memory_info().rss for p in tree)) <= 2**20
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        proc.wait()


def test_dead_replica_keeps_its_last_cpu_and_is_not_alive() -> None:
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code + "time.sleep(30)"])
    meter = ProcessMeter(lambda: [_replica(proc.pid)])
    time.sleep(1.0)
    first = meter.sample()[0]
    proc.kill()
    proc.wait()
    second = meter.sample()[0]
    assert first.alive and not second.alive
    assert second.cpu_s == first.cpu_s >= 0.25
    assert read_stat(proc.pid) is None
    assert ProcessMeter(lambda: [_replica(None)]).sample()[0].alive is False


def test_a_restarted_replica_carries_its_cpu_on_from_the_old_total() -> None:
    """A kill fault's revert starts the replica again as a new process that reads from zero:
    what the new process burns is added on top, even while it is below the old total."""
    burn = ("import time\nend = time.process_time() + {s}\n"
            "while time.process_time() < end: pass\ntime.sleep(30)\n")
    current: list[int | None] = [None]
    meter = ProcessMeter(lambda: [_replica(current[0])])
    old = subprocess.Popen([sys.executable, "-c", burn.format(s=0.6)])
    new = None
    try:
        current[0] = old.pid
        time.sleep(1.2)
        before = meter.sample()[0]
        old.kill()
        old.wait()
        dead = meter.sample()[0]
        new = subprocess.Popen([sys.executable, "-c", burn.format(s=0.2)])
        current[0] = new.pid
        time.sleep(0.8)
        after = meter.sample()[0]
        gained = sum(psutil.Process(new.pid).cpu_times()[:2])
    finally:
        for proc in (old, new):
            if proc is not None:
                proc.kill()
                proc.wait()
    assert before.alive and not dead.alive and after.alive
    assert dead.cpu_s == before.cpu_s >= 0.55
    assert 0.15 <= gained < before.cpu_s  # the new process alone is below the old total
    assert abs(after.cpu_s - (before.cpu_s + gained)) <= 0.05
