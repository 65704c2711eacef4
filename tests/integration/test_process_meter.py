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
