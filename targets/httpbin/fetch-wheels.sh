#!/usr/bin/env bash
# Download the wheels the compose example's image installs (containers cannot reach PyPI),
# into targets/httpbin/wheels/ (git-ignored), for the image's Python (Debian bookworm: 3.11,
# x86_64). Idempotent: pip skips wheels already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
mkdir -p "$here/wheels"
cp "$here/requirements.txt" "$here/wheels/requirements.txt"
env -u PYTHONPATH "$python" -m pip download -q --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --dest "$here/wheels" -r "$here/requirements.txt"
echo "wheels in $here/wheels"
