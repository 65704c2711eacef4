"""The autoscaler follows the Kubernetes HPA rule on synthetic metric traces."""

from __future__ import annotations

from harness.faults.hpa import HPA
from harness.scenario.faults import Autoscaler


def test_scale_up_follows_ceil_current_times_ratio() -> None:
    hpa = HPA(Autoscaler(min_replicas=1, max_replicas=10, target_cpu=0.5, tolerance=0.1))
    assert hpa.decide(0, current=2, metric=0.9).desired == 4  # ceil(2 × 0.9 / 0.5) = 4
    assert hpa.decide(1, current=3, metric=0.51).desired == 3  # within tolerance


def test_clamped_to_bounds() -> None:
    hpa = HPA(Autoscaler(min_replicas=2, max_replicas=3, target_cpu=0.5, scale_down_window=0))
    assert hpa.decide(0, current=2, metric=5.0).desired == 3
    assert hpa.decide(1, current=3, metric=0.01).desired == 2


def test_scale_down_waits_for_the_stabilization_window() -> None:
    hpa = HPA(Autoscaler(min_replicas=1, max_replicas=8, target_cpu=0.5, scale_down_window=5))
    trace = [(0, 0.9), (1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1), (5, 0.1), (6, 0.1)]
    current, seen = 4, []
    for t, metric in trace:
        current = hpa.decide(t, current, metric).desired
        seen.append(current)
    # the high recommendation at t=0 (8) holds scale-down off until it leaves the 5 s window
    assert seen[:5] == [8, 8, 8, 8, 8]
    assert seen[-1] < 8


def test_flapping_without_windows_or_tolerance() -> None:
    hpa = HPA(
        Autoscaler(min_replicas=1, max_replicas=4, target_cpu=0.5, tolerance=0, scale_down_window=0)
    )
    current, changes = 2, 0
    for t, metric in enumerate([0.8, 0.2, 0.8, 0.2, 0.8, 0.2]):
        new = hpa.decide(t, current, metric).desired
        changes += new != current
        current = new
    assert changes == 6  # every sample changes the replica count: the badly tuned setup flaps
