#!/usr/bin/env bash
# Create the virtualenv that scenarios/httpbin.yaml runs httpbin under (`venv:`), with the
# pinned versions of requirements.txt. Idempotent: an existing venv with the same pins is kept.
#   targets/httpbin/setup-venv.sh [VENV_DIR]     (default: .venvs/httpbin at the repo root)
# PYTHON picks the base interpreter (default python3; any Python >= 3.9).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venvs/httpbin}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.txt"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$stamp" "$here/requirements.txt"; then
  echo "$venv is up to date"
  exit 0
fi
# Not the harness's venv: a venv made from inside one would still be a separate venv, but
# unset VIRTUAL_ENV/PYTHONPATH so nothing of the caller's environment leaks into the install.
env -u VIRTUAL_ENV -u PYTHONPATH "$python" -m venv --clear "$venv"
env -u PYTHONPATH "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --no-cache-dir -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
echo "created $venv ($("$venv/bin/python" -m pip show httpbin 2>/dev/null | grep '^Version' || true))"
