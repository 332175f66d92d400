#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL answers on 127.0.0.1:5432, starting the cluster if not.
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ready; then exit 0; fi
echo "postgres: not answering; starting the local cluster" >&2
version=$(ls /etc/postgresql | sort -V | tail -1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 50); do ready && exit 0; sleep 0.2; done
echo "postgres: still not answering on 127.0.0.1:5432" >&2
exit 1
