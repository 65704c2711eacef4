"""The shop: the realistic sample system the harness measures.

A product API on PostgreSQL with a Valkey cache-aside, a CPU-heavy search, and a checkout that
calls a paid downstream (``targets.payments``) under a selectable retry policy. Run it as
``python -m targets.shop``; its configuration and variants are read from the environment
(see :mod:`targets.shop.variants` and ``docs/sample-system.md``).
"""
