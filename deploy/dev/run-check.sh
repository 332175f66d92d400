#!/usr/bin/env bash
# CI: the quick start, literally. `make run` must come up, seed the demo county and answer the
# first example it prints; stopped with Ctrl-C and started again, it must come back with the
# same data and not seed twice. It runs as an installation of its own (state in
# .jiuzhu-check/, databases jiuzhu_check_*), made afresh each time (KEEP=1 keeps it for a look afterwards), on make run's ports.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Its own topics too, should the broker on :9092 already hold another installation's.
export JIUZHU_RUN_DIR=.jiuzhu-check JIUZHU_RUN_DB_PREFIX=jiuzhu_check_
export JIUZHU__KAFKA__TOPIC_PREFIX=check.
export JIUZHU_CERTS="$PWD/$JIUZHU_RUN_DIR/certs"
reset() {
  rm -rf "$JIUZHU_RUN_DIR"
  for s in registry clues decisions payments followup console; do
    psql -q -h 127.0.0.1 -U postgres -d postgres \
      -c "DROP DATABASE IF EXISTS $JIUZHU_RUN_DB_PREFIX$s WITH (FORCE)" 2>/dev/null || true
  done
}
reset
log=$JIUZHU_RUN_DIR/run-check.log
mkdir -p "$JIUZHU_RUN_DIR"
pid=

start() {
  : >"$log"
  # A process group of its own, so Ctrl-C (SIGINT) reaches it as from a terminal.
  setsid make run >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1800); do
    if grep -q 'Jiuzhu is running' "$log"; then
      # Came up, but a service had to be started twice: say so, with why it stopped.
      grep -a -E "stopped while starting|Error:" "$log" >&2 || true
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 1
  done
  echo "run-check: make run did not come up; its errors and warnings, then its last lines:" >&2
  grep -a -E "ERROR|WARN|Error:|error:|panicked|stopped while starting" "$log" | grep -v "policy files not in" | head -40 >&2 || true
  tail -80 "$log" >&2
  stop
  exit 1
}

stop() {
  [ -n "$pid" ] || return 0
  kill -INT -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap 'stop; [ "${KEEP:-0}" = 1 ] || reset' EXIT

clues() {
  target/debug/jiuzhu call https://127.0.0.1:50052 jiuzhu.clues.v1.CluesService/ListClues \
    '{"regionCode":"520121"}' --as as-relief_prosecutor | grep -c '"clueId"' || true
}

start
grep -q 'demo cases of 开阳县人民检察院' "$log" || { echo "run-check: no demo cases printed" >&2; tail -40 "$log" >&2; exit 1; }
first=$(clues)
echo "run-check: first run up; the demo county's clue board holds $first clues"
[ "$first" -ge 10 ] || { echo "run-check: expected the ten demo clues, found $first" >&2; exit 1; }
signin=$(curl -fsS http://127.0.0.1:8080/signin) || { echo "run-check: the console does not answer on :8080" >&2; exit 1; }
grep -q 'name="staff_no"' <<<"$signin" || { echo "run-check: the console's sign-in page lacks its form" >&2; exit 1; }
code=$(JIUZHU__CONSOLE__DATABASE_URL="postgres://postgres@127.0.0.1:5432/${JIUZHU_RUN_DB_PREFIX}console" target/debug/jiuzhu-console code P-1001)
[[ "$code" =~ ^[0-9]{6}$ ]] || { echo "run-check: no authenticator code for the demo staff ($code)" >&2; exit 1; }
echo "run-check: the console answers and has its demo staff"
services=$(target/debug/jiuzhu call https://127.0.0.1:50053 list --as as-auditor)
grep -q 'jiuzhu.decisions.v1.DecisionsService' <<<"$services" || { echo "run-check: reflection lists $services" >&2; exit 1; }
stop

start
if grep -q 'demo county: generating' "$log"; then echo "run-check: the second run seeded again" >&2; exit 1; fi
again=$(clues)
echo "run-check: second run up; $again clues"
[ "$again" = "$first" ] || { echo "run-check: $first clues before the restart, $again after" >&2; exit 1; }
stop
echo "run-check: make run works from this checkout, and keeps its data across a restart"
