"""The Run: stack up → warm-up → phases → stack down, writing artifacts as it goes.

Whatever happens (target failure, SIGINT/SIGTERM, a bug), the ``finally`` block stops the
traffic and the sampler, tears the stack down and writes the manifest with the final status,
so the artifacts on disk always describe what was recorded.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import artifacts as art
from harness.errors import (
    ArtifactError,
    HarnessError,
    InputError,
    Interrupted,
    RunFailed,
    TargetError,
)
from harness.faults.base import FaultLog
from harness.faults.catalog import build_fault
from harness.faults.context import FaultContext
from harness.faults.timeline import FaultTimeline
from harness.meter.process import ProcessMeter
from harness.meter.sampler import Sampler
from harness.otel.env import otel_env
from harness.otel.receiver import OtlpReceiver
from harness.profiling import ProfileReceiver
from harness.run.interrupt import StopFlag
from harness.run.progress import Progress
from harness.scenario.faults import PROXIED_KINDS
from harness.stack.local import LocalStack
from harness.traffic.distributed import DistributedTraffic
from harness.traffic.engine import Traffic
from harness.traffic.recorder import PhaseClock, Recorder

if TYPE_CHECKING:
    from harness.meter.base import Meter
    from harness.scenario import Scenario
    from harness.stack.base import CrashWatch
    from harness.stack.compose import ComposeStack

TICK_S = 0.25
# While a designed mix plays, replicas are sampled this often: the fit cuts windows at sample
# boundaries plus a guard, so faster samples keep more of each window (docs/blackbox.md).
DESIGN_SAMPLE_S = 0.2
DOCKER_FAULTS = frozenset({"kill", "stop", "pause", "cache_eviction", "noisy_neighbour"})
FLUSH_S = 1.0


@dataclass
class RunResult:
    run_dir: Path
    status: str
    error: str | None = None
    records: int = 0
    phases: list[art.PhaseWindow] = field(default_factory=list)


def default_run_dir(scenario: Scenario, root: Path = Path("reports")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / f"{stamp}-{scenario.name}"


def prepare_run_dir(run_dir: Path) -> None:
    """Create the run directory; never reuse one that holds a run (nothing is overwritten)."""
    if (run_dir / art.MANIFEST).exists() or (run_dir.exists() and any(run_dir.iterdir())):
        raise ArtifactError(f"{run_dir}: already exists and is not empty; choose another --output")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{run_dir}: cannot create the run directory ({exc})") from exc


class Run:
    """Owns one run. Attributes are the run's parts; ``execute`` drives them."""

    def __init__(self, scenario: Scenario, run_dir: Path, price_book: str,
                 variant: str = "default", live: bool = True, master_bind: str | None = None,
                 remote_workers: int = 0) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.clock = PhaseClock()
        self.stop_flag = StopFlag()
        self.recorder = Recorder(run_dir / art.REQUESTS, self.clock, variant)
        self.stack = _make_stack(scenario, run_dir)
        self.sampler = Sampler(_make_meter(self.stack), self.clock, run_dir / art.USAGE)
        self.traffic: Traffic | DistributedTraffic | None = None
        self.master_bind, self.remote_workers = master_bind, remote_workers
        self.faults: FaultTimeline | None = None
        self.profiles: ProfileReceiver | None = None
        self.otel: OtlpReceiver | None = None
        self.progress = Progress(scenario.traffic.total_duration, live=live)
        self.manifest = art.Manifest(
            run_id=run_dir.name, scenario_name=scenario.name,
            scenario_path=str(scenario.source), scenario=scenario.dump(),
            runtime=scenario.target.runtime, price_book=price_book, started_at=time.time(),
            versions=_versions(), git_sha=_git_sha(scenario.source.parent),
            traffic={"model": scenario.traffic.model, "variant": variant},
            harness_pid=os.getpid(),
        )

    def execute(self) -> RunResult:
        self.stop_flag.install()  # first: a signal from now on is seen by the run's waits
        art.write_manifest(self.run_dir, self.manifest)
        try:
            self._run()
            self.manifest.status = "completed"
        except Interrupted as exc:
            self._fail("interrupted", str(exc))
        except RunFailed as exc:
            self._fail("failed", str(exc))
        except HarnessError as exc:
            self._fail("failed", str(exc))
            raise
        except BaseException as exc:  # a bug: still tear down and say so in the manifest
            self._fail("failed", f"internal error: {type(exc).__name__}: {exc}")
            raise
        finally:
            records = self._teardown()
        return RunResult(self.run_dir, self.manifest.status, self.manifest.error, records,
                         self.manifest.phases)

    def _fail(self, status: art.Status, message: str) -> None:
        self.manifest.status = status
        self.manifest.error = message

    def _run(self) -> None:
        self.stop_flag.raise_if_set()  # a signal while the command started: start nothing
        self._start_profiling()
        self._start_otel()
        self.progress.note("starting the stack")
        self.stack.up(self.stop_flag)
        self.manifest.services = self.stack.describe()
        art.write_manifest(self.run_dir, self.manifest)
        self.sampler.start()
        self.traffic = self._traffic(self.stack.entry_url())
        self.faults = self._fault_timeline(self.traffic)
        self.traffic.start()
        self._drive(self.traffic)

    def _traffic(self, host: str) -> Traffic | DistributedTraffic:
        local = self.scenario.traffic.worker_count
        if local <= 1 and self.master_bind is None:
            return Traffic(self.scenario, host, self.recorder)
        self.progress.note(f"load from {local if local > 1 else 0} local and "
                           f"{self.remote_workers} remote worker(s)")
        return DistributedTraffic(self.scenario, host, self.recorder, self.clock, self.run_dir,
                                  local=local if local > 1 else 0, remote=self.remote_workers,
                                  bind=self.master_bind)

    def _start_profiling(self) -> None:
        """Targets send profiles to the embedded receiver, or to the user's Pyroscope."""
        spec = self.scenario.profiling
        if not spec.enabled:
            return
        url = spec.server
        if url is None:
            self.profiles = ProfileReceiver(self.run_dir / "profiles", phase=self.clock.current)
            url = self.profiles.url
        self.stack.extra_env = {"HARNESS_PYROSCOPE_URL": url,
                                "HARNESS_PYROSCOPE_SAMPLE_RATE": str(spec.sample_rate)}

    def _start_otel(self) -> None:
        """Process services export their spans to the embedded OTLP receiver (docs/otel.md)."""
        spec = self.scenario.otel
        if not spec.enabled or not isinstance(self.stack, LocalStack):
            return
        self.otel = OtlpReceiver(self.run_dir)
        self.stack.service_env = {
            name: otel_env(self.otel.endpoint, name, spec.schedule_delay)
            for name, svc in self.scenario.target.services.items() if svc.kind == "process"}

    def _stop_otel(self) -> None:
        """After the stack is down (the SDKs flush on shutdown): spans from now on are late;
        wait for the last ones (at most ``otel.grace``), then write traces.parquet."""
        if self.otel is None:
            return
        try:
            self.otel.stack_stopped()
        finally:
            self.otel.stop(self.scenario.otel.grace)

    def _fault_timeline(self, traffic: Traffic | DistributedTraffic) -> FaultTimeline:
        proxy = self.stack.fault_proxy_client() if isinstance(self.stack, LocalStack) else None
        ctx = FaultContext(self.stack, self.stop_flag, proxy, traffic.schedule, self.sampler,
                           self.run_dir)
        return FaultTimeline(self.scenario.faults, lambda spec: build_fault(ctx, spec),
                             FaultLog(self.run_dir / art.FAULTS),
                             lambda name: self._enter_phase(name, True))

    def _drive(self, traffic: Traffic | DistributedTraffic) -> None:
        t = self.scenario.traffic
        plan = ([("warmup", t.warmup, False)] if t.warmup > 0 else []) + [
            ("baseline", t.measured_duration, True)]
        self.progress.start()
        last_flush = time.time()
        for name, length, priced in plan:
            self._enter_phase(name, priced)
            begin = time.time()
            end = begin + length
            while (now := time.time()) < end:
                if self.stop_flag.wait(min(TICK_S, end - now)):
                    self.stop_flag.raise_if_set()
                if priced and self.faults is not None:
                    self.faults.poll(time.time() - begin)
                self._check_crashes()
                traffic.tick()
                self._sample_for_design(traffic)
                if time.time() - last_flush >= FLUSH_S:
                    self.recorder.flush()
                    last_flush = time.time()
                    self.progress.update(self.recorder, self.sampler, traffic)
        self._close_phase()

    def _sample_for_design(self, traffic: Traffic | DistributedTraffic) -> None:
        design = getattr(traffic, "design", None)
        if design is not None and design.active and self.sampler.interval > DESIGN_SAMPLE_S:
            self.sampler.interval = DESIGN_SAMPLE_S

    def _check_crashes(self) -> None:
        """A replica that died on its own: recorded; with ``on_crash: stop`` the run fails."""
        watch: CrashWatch = self.stack
        for crash in watch.crashed():
            phase = self.clock.current
            self.manifest.crashes.append(dict(crash) | {"at": time.time(), "phase": phase})
            art.write_manifest(self.run_dir, self.manifest)
            how = f"exited with {crash['exit_code']}" + (
                " (OOM-killed)" if crash["oom_killed"] else "")
            self.progress.note(f"replica {crash['replica']} {how}")
            if self.scenario.target.on_crash == "stop":
                raise TargetError(f"replica {crash['replica']} of {crash['service']!r} crashed "
                                  f"({how}) during {phase}; last output:\n"
                                  f"    {crash['last_output']}")

    def _enter_phase(self, name: str, priced: bool) -> None:
        self._close_phase()
        self.clock.current = name
        if self.profiles is not None:
            self.profiles.phase = name
        if self.traffic is not None:
            self.traffic.phase_changed(name)
        self.manifest.phases.append(art.PhaseWindow(name=name, start=time.time(), priced=priced))
        art.write_manifest(self.run_dir, self.manifest)

    def _close_phase(self) -> None:
        if self.manifest.phases and self.manifest.phases[-1].end is None:
            self.manifest.phases[-1].end = time.time()

    def _teardown(self) -> int:
        """Stop everything we started; each step runs even if an earlier one failed."""
        self.progress.stop()
        self._close_phase()
        self.clock.current = "teardown"
        if self.traffic is not None:
            try:
                self.traffic.phase_changed("teardown")
            except Exception:  # a broken master link must not stop the teardown
                pass
        steps: list[tuple[str, Any]] = []
        if self.faults is not None:
            steps.append(("fault reverts", self.faults.revert_all))
        if self.traffic is not None:
            steps.append(("traffic", self.traffic.stop))
        steps.append(("sampler", self.sampler.stop))
        if self.profiles is not None:
            steps.append(("profile receiver", self.profiles.stop))
        steps.append(("stack", self.stack.down))
        steps.append(("otel receiver", self._stop_otel))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep tearing down; report the first problem
                self.manifest.error = self.manifest.error or f"{what} failed: {exc}"
                if self.manifest.status == "completed":
                    self.manifest.status = "failed"
        records = self.recorder.close()
        self._export_profiles()
        self._traffic_summary(records)
        self.manifest.ended_at = time.time()
        art.write_manifest(self.run_dir, self.manifest)
        self.stop_flag.uninstall()  # last: a pending second signal may raise from here
        return records

    def _export_profiles(self) -> None:
        """With ``profiling.server``, copy the run's profiles from that Pyroscope to disk."""
        spec = self.scenario.profiling
        if not spec.enabled or spec.server is None:
            return
        from harness.profiling.query import PyroscopeQuery

        auth = None
        if spec.basic_auth:
            user, _, password = spec.basic_auth.partition(":")
            auth = (user, password)
        try:
            query = PyroscopeQuery(spec.server, basic_auth=auth, tenant=spec.tenant)
            for name, svc in self.scenario.target.services.items():
                if svc.kind == "process":
                    query.export(self.run_dir / "profiles", name, self.manifest.phases)
        except HarnessError as exc:  # profiles are optional: the run keeps its other artifacts
            self.manifest.error = self.manifest.error or f"profiles not exported: {exc}"

    def _traffic_summary(self, records: int) -> None:
        info: dict[str, Any] = dict(self.manifest.traffic) | {"records": records}
        priced = [p for p in self.manifest.phases if p.priced and p.end is not None]
        if self.traffic is not None:
            info |= self.traffic.stats()
            if priced:
                asked = self.traffic.asked_rps(priced[0].start, priced[-1].end or 0.0)
                if asked is not None:
                    info["asked_rps"] = round(asked, 3)
        self.manifest.traffic = info


def _make_stack(scenario: Scenario, run_dir: Path) -> LocalStack | ComposeStack:
    if scenario.target.runtime == "docker":
        from harness.stack.compose import ComposeStack

        unsupported = sorted({f.kind for f in scenario.faults} - DOCKER_FAULTS)
        if unsupported:
            supported = ", ".join(sorted(DOCKER_FAULTS))
            raise InputError(f"{scenario.source}: fault kind(s) {', '.join(unsupported)} run on "
                             f"the local runtime only; on docker: {supported} (docs/faults.md)")
        if scenario.otel.enabled:
            raise InputError(f"{scenario.source}: otel.enabled runs on the local runtime only "
                             "(docs/otel.md)")
        foreign = [n for n, s in scenario.target.services.items() if s.interpreter is not None]
        if foreign:
            raise InputError(f"{scenario.source}: venv / python (services {', '.join(foreign)}) "
                             "apply to the local runtime; a container brings its own Python")
        if scenario.target.compose is not None:
            from harness.stack.compose_user import ComposeFileStack

            return ComposeFileStack(scenario, run_dir)
        return ComposeStack(scenario, run_dir)
    proxied = frozenset(f.target for f in scenario.faults if f.kind in PROXIED_KINDS)
    return LocalStack(scenario, run_dir, proxied)


def _make_meter(stack: LocalStack | ComposeStack) -> Meter:
    if isinstance(stack, LocalStack):
        return ProcessMeter(stack.replicas)
    from harness.meter.cgroup import make_docker_meter

    return make_docker_meter(stack.replicas)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("cost-harness", "locust", "pandas", "pyarrow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def _git_sha(where: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
