"""Faults: things that go wrong on purpose during a run, and the embedded fault proxy."""
