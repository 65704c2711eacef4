#!/bin/sh
# Replicas scaled by compose share one environment: each names itself after its container's
# hostname (the short container id), which instrumented targets send back as X-Served-By.
set -eu
export HARNESS_REPLICA="${HARNESS_REPLICA:-$(cat /etc/hostname)}"
exec "$@"
