"""Stage 3 — the report: a priced run in, ``summary.json``, ``report.html`` and the terminal
table out.

``analysis`` drives it from disk alone (artifacts → ledger → summary → report; a run can be
re-priced and re-reported later); ``summary`` writes the headline numbers (a contract);
``timeline`` the per-second series; ``telemetry`` the per-request sources and OTel accounting;
``render`` with ``executive``, ``oncall``, ``debug``, ``charts``, ``bars``, ``profiles`` and
Jinja2 templates renders the self-contained HTML; ``variants`` the variants' side-by-side page.
Rendering only: nothing here measures or prices.
"""
