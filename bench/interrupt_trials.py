"""Interrupt trials: ``harness run`` stopped by SIGINT or SIGTERM at a uniformly random moment
between process start and its natural end, then checked for anything left behind.

    .venv/bin/python bench/interrupt_trials.py [--runtime local|docker|both] [--trials 20]
                                               [--seed 1] [--window A,B] [--busy N]

Per runtime, one uninterrupted calibration run gives the natural length T (process start to
exit, analysis included; docker images are brought up to date first); each trial then signals
at U(0, T) with SIGINT or SIGTERM (seeded). After each trial: exit code 130 (0 if the run
finished first, or if the signal came in the teardown after the measured part had ended),
manifest status ``interrupted`` (``completed`` when the signal came after the measured part),
no process carrying the run's marker or its directory in its command line, no docker resource
labelled with a project this trial created, every injected fault reverted with status ok, and
``harness report RUN_DIR`` exits 0, and no traceback on stderr. The moment the signal landed in
is read back from the artifacts (manifest phases, faults.jsonl, ``ended_at``). Writes the
``interrupts`` section of RESULTS.md. Not run in CI (the tests' matrices cover each moment once).

``--window A,B`` signals at U(A, B) seconds instead (``--window 0,1.5``: while the command
parses and imports, where a signal once ended in gevent's ``LoopExit`` traceback) and writes
the ``interrupts-window`` section; ``--busy N`` keeps N processes spinning meanwhile, so the
start-up is as slow as on a loaded CI machine.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import HARNESS, ROOT, stop_on_sigterm, table, write_section  # noqa: E402

SCENARIO = """
name: interrupt-trials
target:
  services:
    api:
      command: "{python} -m targets.sample"
      cpu: 0.5
      memory: 256Mi
traffic: {model: open, rate: 20, warmup: 3s, duration: 10s}
requests:
  - {name: cheap, path: /cheap, weight: 3}
  - {name: cpu, path: "/cpu?ms=2"}
faults:
  - {name: killed, kind: kill, target: api, replicas: 1, start: 1s, duration: 3s}
  - {name: paused, kind: pause, target: api, replicas: 1, start: 5s, duration: 3s}
"""
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MOMENTS = ("pre-run", "startup", "warmup", "measured", "fault", "teardown", "analysis",
           "finished")
RUN_TIMEOUT_S = 240.0
# moment -> (exit codes, manifest statuses) accepted; other moments: 130 and "interrupted".
# "pre-run": no manifest, or one saying "interrupted" (a signal that came while the command
# imported is held and handed to the run, which then starts nothing). "teardown" is after the
# measured part ended on its own: the run's data is complete, the teardown runs to its end
# either way, and the harness goes on to price and report (exit 0).
EXPECTED: dict[str, tuple[set[int | None], set[str | None]]] = {
    "pre-run": ({130}, {None, "interrupted"}), "teardown": ({0, 130}, {"completed"}),
    "analysis": ({130}, {"completed"}), "finished": ({0}, {"completed"})}
PROJECT = re.compile(r" -p (harness-[0-9a-f]+) ")
PROJECT_LABEL = "io.cost-harness.project"


@dataclass
class Trial:
    runtime: str
    index: int
    signal_name: str | None
    offset_s: float
    code: int | None = None
    status: str | None = None
    moment: str = "?"
    left: list[str] = field(default_factory=list)  # processes or docker resources left
    unreverted: list[str] = field(default_factory=list)  # fault steps not reverted with ok
    problems: list[str] = field(default_factory=list)  # other failed checks

    def failures(self) -> list[str]:
        return self.left + self.unreverted + self.problems


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=["local", "docker", "both"], default="both")
    parser.add_argument("--trials", type=int, default=20, help="trials per runtime")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=_window, default=None, metavar="A,B",
                        help="signal at U(A, B) seconds instead of U(0, T)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="N processes spinning on the CPU during the trials")
    args = parser.parse_args()
    runtimes = ["local", "docker"] if args.runtime == "both" else [args.runtime]
    work = Path(tempfile.mkdtemp(prefix="interrupt-trials-"))
    scenario = work / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    rng = random.Random(args.seed)
    results: dict[str, tuple[float, list[Trial]]] = {}
    for runtime in runtimes:
        natural = _calibrate(runtime, scenario, work)
        low, high = args.window or (0.0, natural)
        with _spinning(args.busy):
            trials = [_trial(runtime, i, scenario, work, rng.uniform(low, high),
                             rng.choice(SIGNALS)) for i in range(1, args.trials + 1)]
        results[runtime] = (natural, trials)
    failed = any(t.failures() for _, ts in results.values() for t in ts)
    _publish(args, results)
    if failed:
        print(f"\nsome trials failed; their run directories are kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _window(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        bounds = float(low), float(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected A,B in seconds") from None
    if not 0 <= bounds[0] < bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= A < B")
    return bounds


@contextmanager
def _spinning(count: int) -> Iterator[None]:
    """``count`` processes burning a core each while the block runs; stopped after it."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(count)]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def _calibrate(runtime: str, scenario: Path, work: Path) -> float:
    """One uninterrupted run: its wall time from process start to exit (docker: after the
    images are current, so a rebuild does not stretch T)."""
    if runtime == "docker":
        subprocess.run([HARNESS, "images", "bootstrap"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    trial = _trial(runtime, 0, scenario, work, float("inf"), None)
    if trial.code != 0 or trial.failures():
        raise SystemExit(f"{runtime}: the uninterrupted run failed (exit {trial.code}): "
                         f"{trial.failures()}")
    print(f"{runtime}: natural length {trial.offset_s:.1f} s", flush=True)
    return trial.offset_s


def _trial(runtime: str, index: int, scenario: Path, work: Path, offset: float,
           sig: signal.Signals | None) -> Trial:
    run_dir = work / f"{runtime}-{index:03d}"
    before = _docker_projects() if runtime == "docker" else set()
    trial = Trial(runtime, index, sig.name if sig else None, offset)
    with (work / f"{runtime}-{index:03d}.err").open("wb") as err:
        proc = subprocess.Popen([HARNESS, "run", str(scenario), "--output", str(run_dir),
                                 "--runtime", runtime], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
    started = time.time()
    try:
        sent_at = _signal_at(proc, started, offset, sig)
        trial.code = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        _stop(proc, run_dir)
    if sig is None:
        trial.offset_s = time.time() - started  # calibration: the natural length
    _check(trial, run_dir, sent_at, before)
    if b"Traceback" in (work / f"{runtime}-{index:03d}.err").read_bytes():
        trial.problems.append("a traceback on stderr")
    print(f"{runtime} #{index}: {trial.signal_name or '-'} at {offset:5.1f} s → "
          f"{trial.moment}, exit {trial.code}, {trial.status}"
          + (f"; FAILED {trial.failures()}" if trial.failures() else ""), flush=True)
    return trial


def _signal_at(proc: subprocess.Popen[bytes], started: float, offset: float,
               sig: signal.Signals | None) -> float | None:
    """Send ``sig`` ``offset`` seconds after ``started`` unless the run ended first."""
    if sig is None:
        return None
    try:
        proc.wait(timeout=max(0.0, started + offset - time.time()))
        return None  # finished before the signal was due
    except subprocess.TimeoutExpired:
        sent = time.time()
        proc.send_signal(sig)
        return sent


def _stop(proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    """A trial that hangs is stopped and cleaned up, never left running."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        subprocess.run([HARNESS, "cleanup", str(run_dir), "--force"], cwd=ROOT,
                       capture_output=True, check=False)  # fmt: skip


def _check(trial: Trial, run_dir: Path, sent_at: float | None, before: set[str]) -> None:
    manifest = _json(run_dir / "manifest.json")
    trial.status = manifest.get("status") if manifest else None
    trial.moment = _moment(manifest, _faults(run_dir), sent_at)
    codes, wanted = EXPECTED.get(trial.moment, ({130}, {"interrupted"}))
    if trial.code not in codes:
        early = " (before the harness installed its signal handlers; nothing had started)"
        trial.problems.append(f"exit code {trial.code}"
                              + (early if trial.moment == "pre-run" else ""))
    if trial.status not in wanted:
        trial.problems.append(f"status {trial.status}")
    trial.left += _processes(run_dir) + _docker_left(run_dir, before, trial.runtime)
    trial.unreverted += _unreverted(_faults(run_dir))
    if manifest:
        done = subprocess.run([HARNESS, "report", str(run_dir)], cwd=ROOT, capture_output=True,
                              text=True, check=False)  # fmt: skip
        if done.returncode != 0 or not (run_dir / "report.html").is_file():
            trial.problems.append(f"harness report exit {done.returncode}: "
                                  f"{done.stderr.strip()[-200:]}")


def _moment(manifest: dict[str, Any], faults: list[dict[str, Any]],
            sent_at: float | None) -> str:
    """Where the signal landed, from the artifacts' own timestamps."""
    if sent_at is None:
        return "finished"
    if not manifest or sent_at < float(manifest.get("started_at") or 0):
        return "pre-run"
    phases = manifest.get("phases") or []
    if not phases or sent_at < phases[0]["start"]:
        return "startup"
    if manifest.get("ended_at") and sent_at >= manifest["ended_at"]:
        return "analysis"
    if phases[-1].get("end") is not None and sent_at >= phases[-1]["end"]:
        return "teardown"
    for step in faults:
        revert = next((f for f in faults if f["fault"] == step["fault"]
                       and f["action"] == "revert"), None)
        if step["action"] == "inject" and step["start"] <= sent_at < (
                revert["end"] if revert else float("inf")):
            return "fault"
    current = next((p for p in reversed(phases) if p["start"] <= sent_at), phases[0])
    return "warmup" if current["name"] == "warmup" else "measured"


def _unreverted(faults: list[dict[str, Any]]) -> list[str]:
    out = [f"fault {f['fault']} {f['action']} {f['status']} ({f.get('error')})" for f in faults
           if f["status"] != "ok"]
    for name in {f["fault"] for f in faults if f["action"] == "inject"}:
        steps = [f["action"] for f in faults if f["fault"] == name]
        if steps.count("inject") != steps.count("revert"):
            out.append(f"fault {name} not reverted")
    return out


def _processes(run_dir: Path) -> list[str]:
    """Processes with the run's marker in their environment or its directory in argv."""
    marker = str(run_dir.resolve())
    for attempt in range(2):
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                argv = " ".join(proc.info["cmdline"] or [])
                if marker in argv or proc.environ().get("HARNESS_RUN_DIR") == marker:
                    found.append(f"pid {proc.pid} {argv[:80]}")
            except (psutil.Error, OSError):
                continue
        if not found or attempt:
            return found
        time.sleep(2.0)  # a child may still be exiting
    return found


def _docker_projects() -> set[str]:
    import docker

    client = docker.from_env(timeout=30)
    try:
        selector: dict[str, str | list[str] | bool] = {"label": PROJECT_LABEL}
        items = [*client.containers.list(all=True, filters=selector),
                 *client.networks.list(filters=selector),
                 *client.volumes.list(filters=selector)]  # fmt: skip
        return {_label(i.attrs) for i in items}
    finally:
        client.close()


def _label(attrs: dict[str, Any]) -> str:
    labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
    return str(labels.get(PROJECT_LABEL, ""))


def _docker_left(run_dir: Path, before: set[str], runtime: str) -> list[str]:
    """Labelled resources of this trial's project (or of any project that appeared)."""
    if runtime != "docker":
        return []
    log = run_dir / "logs" / "compose.log"
    mine = set(PROJECT.findall(log.read_text(errors="replace"))) if log.is_file() else set()
    state = _json(run_dir / "compose.json")
    mine |= {state["project"]} if state.get("project") else set()
    now = _docker_projects()
    return [f"docker project {p}" for p in sorted((now & mine) | (now - before))]


def _faults(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "faults.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def _json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _publish(args: argparse.Namespace, results: dict[str, tuple[float, list[Trial]]]) -> None:
    rows = []
    for runtime, (natural, trials) in results.items():
        moments = Counter(t.moment for t in trials)
        codes = Counter(t.code for t in trials)
        rows.append([
            runtime, len(trials), f"{natural:.0f} s",
            ", ".join(f"{m} {moments[m]}" for m in MOMENTS if moments[m]),
            ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=str)),
            sum(1 for t in trials if t.left), sum(1 for t in trials if t.unreverted),
            sum(1 for t in trials if t.problems)])
    when = (f"U({args.window[0]:g} s, {args.window[1]:g} s)" if args.window else
            "U(0, T), T the natural length of an uninterrupted run (analysis included)")
    busy = f", with {args.busy} processes spinning on the CPU meanwhile" if args.busy else ""
    body = (
        f"{args.trials} trials per runtime (seed {args.seed}): `harness run` of a 3 s warm-up + "
        "10 s scenario (one replica, a kill fault then a pause fault) signalled with SIGINT or "
        f"SIGTERM at {when}{busy}. Moment: where the signal landed, read back from the "
        "artifacts. Left behind: trials after which a process with the run's marker or its "
        "directory in its command line, or a docker resource labelled with the trial's "
        "project, remained (goal 0). Revert not ok: trials whose faults.jsonl lacks an ok "
        "revert for an inject. Other failures: exit code, manifest status, `harness report` "
        "not as expected, or a traceback on stderr.\n\n"
        + table(["runtime", "trials", "natural length T", "moment reached", "exit codes",
                 "left behind", "revert not ok", "other failures"], rows))
    problems = [f"- {t.runtime} #{t.index} ({t.signal_name} at {t.offset_s:.1f} s, "
                f"{t.moment}): {'; '.join(t.failures())}"
                for _, ts in results.values() for t in ts if t.failures()]
    if problems:
        body += "\n\nFailed trials:\n\n" + "\n".join(problems)
    print("\n" + body)
    if args.window:
        write_section("interrupts-window", "Interrupt trials in a window (SIGINT / SIGTERM "
                      f"{args.window[0]:g}–{args.window[1]:g} s after the command starts)", body)
    else:
        write_section("interrupts", "Interrupt trials (SIGINT / SIGTERM at random moments)", body)


if __name__ == "__main__":
    main()
