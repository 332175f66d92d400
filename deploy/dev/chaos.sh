#!/usr/bin/env bash
# `make chaos`: the whole platform as processes under a load of relief cases while every part is
# killed once (see tests/src/bin/chaos.rs). Uses the machine's PostgreSQL, which it restarts
# once, and a broker of its own on CHAOS_BROKER_PORT whose log is kept on disk, so that killing
# it loses nothing a real Kafka broker would keep. Sizes: CHAOS_CASES, CHAOS_RATE,
# CHAOS_CONCURRENCY, CHAOS_GAP. Logs of every process in target/chaos.
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${CHAOS_BROKER_PORT:-29092}
STORE=target/chaos-broker
export JIUZHU_TEST_KAFKA_BROKERS=127.0.0.1:$PORT
export JIUZHU_TEST_DATABASE_URL=${JIUZHU_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# tansu reads the path after sqlite:// relative to its working directory (this one). With
# CHAOS_BROKER_STORAGE=memory the broker keeps its log in memory (and the run spares it: a
# broker that forgets its log on restart is not what Kafka is).
if [ "${CHAOS_BROKER_STORAGE:-sqlite}" = memory ]; then
  export JIUZHU_BROKER_STORAGE=memory://tansu/
  export CHAOS_SPARE=${CHAOS_SPARE:+$CHAOS_SPARE,}broker
else
  export JIUZHU_BROKER_STORAGE=sqlite://$STORE/broker.db
fi

deploy/dev/postgres.sh
cargo build --workspace --bins

deploy/dev/broker.sh stop "$PORT"
rm -rf "$STORE" && mkdir -p "$STORE"
deploy/dev/broker.sh start "$PORT" >/dev/null
trap 'deploy/dev/broker.sh stop "$PORT"' EXIT

target/debug/jiuzhu-chaos
