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

# Every benchmark once at a small size, in the test build (figures printed, nothing timed is
# asserted): a benchmark that no longer runs fails CI instead of rotting until `make bench`.
BENCH_PERSONS=2000 BENCH_PARTIES=50 BENCH_CASES=2000 BENCH_DUE=50 \
  BENCH_DISBURSEMENTS=50 BENCH_STEADY=20 BENCH_RATE=50 BENCH_SECONDS=2 \
  BENCH_TASKS=4 BENCH_INSERTS=300 BENCH_COMMANDS=300 BENCH_MESSAGES=2000 BENCH_EVENTS=300 \
  BENCH_LATENCY_EVENTS=100 BENCH_LATENCY_RATE=100 \
  cargo test -p jiuzhu-tests --benches
