"""The calibrated target: every call costs exactly what its query string asks for.

Run it with ``PORT=8000 CALIBRATED_DB_URL=postgresql://... python -m targets.calibrated``;
``bench/attribution.py`` checks the harness's per-call numbers against that truth.
See :mod:`targets.calibrated.app`.
"""
