"""The run's stack: a scenario's ``target`` in, running services out (and all of it gone
after ``down``).

:class:`~harness.stack.base.Stack` is the protocol a runtime gives a run: ``up``, ``down``,
``entry_url``, ``replicas`` (what the meters and faults see), ``describe``. ``local`` starts
processes on 127.0.0.1 (``backing``: Valkey and PostgreSQL from PyPI; ``interpreter``: another
venv for a command); ``compose`` renders a compose file and runs it on Docker, ``compose_user``
runs the user's own file as is; ``health`` probes readiness for both.
"""
