#!/usr/bin/env bash
# PostgreSQL for the tests, idempotent: the main cluster at 5432 (every database test), and a
# private cluster "scalelab_restart" at 5439 that tests/test_db_outage.py stops and restarts,
# so restarting it never disturbs tests running against the main one. Both trust local TCP.
set -euo pipefail
version="$(ls /etc/postgresql | sort -n | tail -1)"
wait_ready() {
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p "$1" && return 0; sleep 1; done
  echo "PostgreSQL at 127.0.0.1:$1 did not become ready" >&2
  return 1
}
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
wait_ready 5432
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx scalelab_restart; then
  pg_createcluster "$version" scalelab_restart -p 5439 -- --auth=trust --username=postgres >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5439; then
  pg_ctlcluster --skip-systemctl-redirect "$version" scalelab_restart start
fi
wait_ready 5439
