"""The run's meters: replicas in, resource samples out (``usage.parquet``).

A :class:`~harness.meter.base.Meter` reads each replica's cumulative CPU-seconds, RSS, I/O and
network bytes: ``process`` from ``/proc`` for the local runtime's process trees, ``cgroup``
from the containers' cgroup files (``docker`` through the engine's API where those are not
readable). ``sampler`` samples a meter at an interval in a greenlet and writes the samples
as Parquet parts, stamped with the run's phase.
"""
