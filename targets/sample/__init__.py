"""The sample target: a plain WSGI service with endpoints of designed, known cost.

Run it with ``PORT=8000 python -m targets.sample``. See :mod:`targets.sample.app`.
"""
