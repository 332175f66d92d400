#!/usr/bin/env bash
# The local Kafka-protocol broker for development and tests: tansu, built once from crates.io
# and cached outside the clone. Production runs Apache Kafka; nothing depends on tansu.
#
#   deploy/dev/broker.sh install          build tansu into the cache if it is not there
#   deploy/dev/broker.sh start [PORT]     start on 127.0.0.1:PORT (default 9092) unless something
#                                         listens there already; prints "started" or "running"
#   deploy/dev/broker.sh stop [PORT]      stop a broker this script started on PORT
#
# The log is kept in memory unless JIUZHU_BROKER_STORAGE names another engine, such as
# sqlite://target/x/broker.db (a path relative to the working directory): a broker that keeps
# its log across restarts, as Kafka does; `make chaos` restarts its broker that way.
set -euo pipefail

TANSU_VERSION=0.6.0
CACHE=${JIUZHU_CACHE:-$HOME/.cache/jiuzhu}
TANSU_FEATURES=dynostore,libsql
ROOT=$CACHE/tansu-$TANSU_VERSION-${TANSU_FEATURES//,/-}
BIN=$ROOT/bin/tansu
PORT=${2:-9092}
PIDFILE=$CACHE/broker-$PORT.pid
LOG=$CACHE/broker-$PORT.log

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

install() {
  if [ -x "$BIN" ]; then return 0; fi
  mkdir -p "$CACHE"
  echo "broker: building tansu $TANSU_VERSION once (about 10 minutes on 2 cores); cached in $ROOT" >&2
  CARGO_TARGET_DIR=$CACHE/tansu-build cargo install "tansu@$TANSU_VERSION" --locked \
    --features "$TANSU_FEATURES" --root "$ROOT" >&2
  rm -rf "$CACHE/tansu-build"
}

case "${1:-}" in
  install)
    install
    ;;
  start)
    if listening; then echo running; exit 0; fi
    install
    mkdir -p "$CACHE"
    # The broker would export its own traces to whatever endpoint the caller uses: keep it out.
    # setsid: a Ctrl-C meant for `make run` must not kill the broker before the services stop.
    env -u OTEL_EXPORTER_OTLP_ENDPOINT setsid nohup "$BIN" broker \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      --storage-engine "${JIUZHU_BROKER_STORAGE:-memory://tansu/}" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
      if listening; then echo started; exit 0; fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "broker: tansu exited at start; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1
      fi
      sleep 0.2
    done
    echo "broker: nothing listens on 127.0.0.1:$PORT after 20 s; see $LOG" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: $0 install | start [PORT] | stop [PORT]" >&2
    exit 2
    ;;
esac
