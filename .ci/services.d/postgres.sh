#!/usr/bin/env bash
# PostgreSQL at 127.0.0.1:5432 (the Debian cluster "main"), which the database tests use.
set -euo pipefail
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start at 127.0.0.1:5432" >&2; exit 1; }
