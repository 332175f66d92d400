#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL answers on 127.0.0.1:5432: installed if missing, the
# cluster started if down.
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ready; then exit 0; fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  # A machine without PostgreSQL: install Debian's server (it creates and starts a cluster).
  echo "postgres: not installed; installing Debian's postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >&2
  # The development setup connects as postgres without a password over TCP, as on this kind of
  # machine (never do this on a shared host).
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
fi
echo "postgres: not answering; starting the local cluster" >&2
version=$(ls /etc/postgresql | sort -V | tail -1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start || ready
for _ in $(seq 1 50); do ready && exit 0; sleep 0.2; done
echo "postgres: still not answering on 127.0.0.1:5432" >&2
exit 1
