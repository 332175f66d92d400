#!/usr/bin/env bash
# `make test`: PostgreSQL up, the broker installed and running (stopped again if this script
# started it), one shared build, then the whole suite in parallel.
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${JIUZHU_TEST_BROKER_PORT:-19092}
export JIUZHU_TEST_KAFKA_BROKERS=127.0.0.1:$PORT
export JIUZHU_TEST_DATABASE_URL=${JIUZHU_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

deploy/dev/postgres.sh
broker=$(deploy/dev/broker.sh start "$PORT")
cleanup() { if [ "$broker" = started ]; then deploy/dev/broker.sh stop "$PORT"; fi; }
trap cleanup EXIT

# Leftovers of earlier runs (templates stay: they are reused while migrations are unchanged).
psql -q -h 127.0.0.1 -U postgres -d postgres -At \
  -c "SELECT datname FROM pg_database WHERE datname LIKE 'jiuzhu\_test\_%'" |
  while read -r db; do psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\""; done

# Binaries first: the tracing test runs the services as processes.
cargo build --workspace --bins --tests
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
