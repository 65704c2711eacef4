"""payments: a stand-in for a paid third-party API (one fee per call in the price book).

``POST /charge`` answers after a configurable latency and fails at a configurable rate or
mode; ``POST /control`` changes that at run time; ``GET /stats`` counts the charges.
Run it as ``python -m targets.payments`` (see :mod:`targets.payments.behaviour`).
"""
