"""The environment of a service that runs under its own interpreter or virtualenv.

A third-party target must not share the harness's virtualenv (installing it there can
downgrade what the harness needs, e.g. ``httpbin`` pins ``greenlet`` below what ``gevent``
wants). With ``venv: DIR`` (or ``python: PATH``) on a service, the local runtime gives its
child an environment in which:

* ``{python}`` is that interpreter and its ``bin/`` directory leads ``PATH``;
* ``VIRTUAL_ENV`` names that venv (for ``python:``, the venv the interpreter lives in, if any);
* the harness's own venv is gone: its ``bin/`` is dropped from ``PATH``, and ``VIRTUAL_ENV``,
  ``PYTHONPATH`` and ``PYTHONHOME`` inherited from the harness are removed (a service's own
  ``env`` may set them again).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["isolated_env", "venv_of"]

_DROPPED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "__PYVENV_LAUNCHER__")


def venv_of(interpreter: Path) -> Path | None:
    """The virtualenv ``interpreter`` belongs to (``DIR/bin/python`` with ``DIR/pyvenv.cfg``)."""
    root = interpreter.absolute().parent.parent
    return root if (root / "pyvenv.cfg").is_file() else None


def _harness_bins() -> set[str]:
    bins = {os.path.dirname(os.path.abspath(sys.executable))}
    if sys.prefix != sys.base_prefix:
        bins.add(os.path.join(sys.prefix, "bin"))
    own = os.environ.get("VIRTUAL_ENV")
    if own:
        bins.add(os.path.join(own, "bin"))
    return {os.path.normpath(b) for b in bins}


def isolated_env(base: Mapping[str, str], interpreter: Path,
                 venv: Path | None = None) -> dict[str, str]:
    """``base`` without the harness's Python environment, set up for ``interpreter``."""
    env = {k: v for k, v in base.items() if k not in _DROPPED}
    theirs = venv or venv_of(interpreter)
    lead = str((theirs / "bin") if theirs is not None else interpreter.absolute().parent)
    drop = _harness_bins() - {os.path.normpath(lead)}
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep)
            if p and os.path.normpath(p) not in drop and os.path.normpath(p) != lead]
    env["PATH"] = os.pathsep.join([lead, *path])
    if theirs is not None:
        env["VIRTUAL_ENV"] = str(theirs)
    return env
