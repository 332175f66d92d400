#!/usr/bin/env bash
# `make run`: the whole platform on this machine. PostgreSQL (started if down; one database per
# service), a Kafka-protocol broker on 127.0.0.1:9092, the five services, the payment provider
# simulator, and the demo county (made once). Everything it keeps is under .jiuzhu/ and in the
# jiuzhu_* databases, so a second `make run` carries on where the first stopped: the broker
# keeps its log in memory, and each service sends what its outbox retains again to a broker
# that lost its topics. Ctrl-C stops it all.
#
# Elsewhere: JIUZHU__KAFKA__BROKERS=host:9092 uses that Kafka instead of starting one, and
# JIUZHU__<SERVICE>__DATABASE_URL points a service at another PostgreSQL (the databases must
# exist). JIUZHU_DEMO=0 skips the demo county. JIUZHU__TELEMETRY__OTLP_ENDPOINT exports traces.
# JIUZHU_RUN_DIR (default .jiuzhu) and JIUZHU_RUN_DB_PREFIX (default jiuzhu_) keep a second
# installation apart from the first (`make run-check` uses them).
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=(registry clues decisions payments followup)
export JIUZHU_CONFIG_DIR=${JIUZHU_CONFIG_DIR:-deploy/config}
STATE=${JIUZHU_RUN_DIR:-.jiuzhu}
STATE_PATH=$(realpath -m "$STATE")
DB_PREFIX=${JIUZHU_RUN_DB_PREFIX:-jiuzhu_}
DEMO_COUNTY=520121
DEMO_PROCURATORATE=开阳县人民检察院
say() { printf '\033[1mjiuzhu:\033[0m %s\n' "$*" >&2; }

mkdir -p "$STATE"
deploy/dev/postgres.sh
for service in "${SERVICES[@]}" console; do
  variable="JIUZHU__${service^^}__DATABASE_URL"
  [ -z "${!variable:-}" ] || continue
  database="$DB_PREFIX$service"
  exists=$(psql -h 127.0.0.1 -U postgres -d postgres -At -c "SELECT 1 FROM pg_database WHERE datname = '$database'")
  [ "$exists" = 1 ] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $database"
  export "$variable=postgres://postgres@127.0.0.1:5432/$database"
done

broker=external
if [ -z "${JIUZHU__KAFKA__BROKERS:-}" ]; then
  broker=$(deploy/dev/broker.sh start 9092)
fi

say "building (the first build takes several minutes)"
cargo build --workspace --bins
bin=target/debug

# The master key that wraps every person's data key: made once per checkout, never committed.
# Losing it makes all personal data unreadable; a real installation keeps it in its secret store.
if [ -z "${JIUZHU__VAULT__MASTER_KEY:-}" ] && [ ! -s "$STATE/master.key" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 > "$STATE/master.key")
  say "created the development master key $STATE/master.key"
fi
[ -n "${JIUZHU__VAULT__MASTER_KEY:-}" ] || export JIUZHU__VAULT__MASTER_KEY_FILE="$STATE_PATH/master.key"
# The audit log's own key (its chain is an HMAC under it), made the same way.
if [ -z "${JIUZHU__AUDIT__KEY:-}" ] && [ ! -s "$STATE/audit.key" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 > "$STATE/audit.key")
fi
[ -n "${JIUZHU__AUDIT__KEY:-}" ] || export JIUZHU__AUDIT__KEY_FILE="$STATE_PATH/audit.key"
export JIUZHU__AUDIT__CHECKPOINT_DIR="${JIUZHU__AUDIT__CHECKPOINT_DIR:-$STATE_PATH/audit}"

# A demo recommendation model, trained once on synthetic past cases (a real installation
# trains on its own history: `jiuzhu recommend train --history cases.jsonl --out model.json`).
if [ -z "${JIUZHU__RECOMMENDER__MODEL:-}" ]; then
  if [ ! -s $STATE/recommender.json ]; then
    say "training the demo recommendation model on 5,000 synthetic past cases"
    $bin/jiuzhu gen relief-history --cases 5000 --seed 1 --out $STATE/relief-history.jsonl
    $bin/jiuzhu recommend train --history $STATE/relief-history.jsonl \
      --out $STATE/recommender.json --version demo-synthetic --evaluate 500 >&2
  fi
  export JIUZHU__RECOMMENDER__MODEL="$STATE_PATH/recommender.json"
fi

# Every API is served over mutual TLS: a development authority and certificates, made once per
# checkout (never committed; an installation uses its own). The role certificates belong to the
# Guiyang city procuratorate's office (520100), whose jurisdiction covers the demo county; the
# same roles for Qiandongnan (522701) are `as-<role>@522701`, to try another office's view.
if [ ! -s $STATE/certs/ca.pem ] || [ ! -s "$STATE/certs/as-relief_prosecutor@522701.pem" ] \
  || [ ! -s "$STATE/certs/console.pem" ]; then
  $bin/jiuzhu dev certs --out $STATE/certs --office 520100 --extra-office 522701 >&2
fi
export JIUZHU__TLS__DIR="$STATE_PATH/certs"
export JIUZHU_CERTS="$STATE_PATH/certs"

pids=()
stop() {
  trap - INT TERM EXIT
  say "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
  if [ "$broker" = started ]; then deploy/dev/broker.sh stop 9092; fi
}
trap stop INT TERM EXIT
for service in "${SERVICES[@]}"; do
  "$bin/jiuzhu-$service" serve &
  pids+=($!)
done
# The payment provider simulator: answers "pending", then notifies payments (each notice twice,
# as real gateways do). Accounts starting 6222029990 are refused, 6222029991 refused once,
# 6222029992 paid without an answer (see `target/debug/jiuzhu-paysim --help`).
$bin/jiuzhu-paysim --listen 127.0.0.1:50060 --notify https://127.0.0.1:50054 \
  --tls-dir $STATE/certs \
  --asynchronous --duplicate-notices 1 --latency-ms 20 \
  --scenario 6222029990=reject --scenario 6222029991=flaky --scenario 6222029992=timeout \
  ${JIUZHU__TELEMETRY__OTLP_ENDPOINT:+--otlp-endpoint "$JIUZHU__TELEMETRY__OTLP_ENDPOINT"} &
pids+=($!)

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Which of the processes started above have ended already (and how), for a start that fails.
ended() {
  local names=("${SERVICES[@]}" paysim) i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}" 2>/dev/null
      printf ' jiuzhu-%s ended (status %s);' "${names[$i]}" "$?"
    fi
  done
}
ports=(50051 50052 50053 50054 50055 50060)
for i in "${!ports[@]}"; do
  port=${ports[$i]}
  restarted=
  for _ in $(seq 1 600); do
    listening "$port" && break
    # A service that stops while starting is started once more, as a process manager would;
    # why it stopped is in the log above (its `Error:` line).
    if [ -z "$restarted" ] && [ "$i" -lt ${#SERVICES[@]} ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}" 2>/dev/null || say "jiuzhu-${SERVICES[$i]} stopped while starting (status $?); starting it again"
      "$bin/jiuzhu-${SERVICES[$i]}" serve &
      pids[$i]=$!
      restarted=1
    fi
    sleep 0.1
  done
  listening "$port" || {
    say "nothing listens on :$port after 60 s;$(ended) see the log above"
    exit 1
  }
done

# The demo county, once: a generated population of 开阳县 imported as rural revitalization's
# register, then ten victims taken to different stages through the APIs (safe to repeat).
if [ "${JIUZHU_DEMO:-1}" != 0 ] && [ ! -f "$STATE/demo/seeded" ]; then
  mkdir -p $STATE/demo
  say "demo county: generating and importing 3,000 residents of $DEMO_COUNTY"
  $bin/jiuzhu gen registry --persons 3000 --seed 2026 --county "$DEMO_COUNTY" --out $STATE/demo/county.csv
  $bin/jiuzhu registry import --department rural_revitalization --quiet $STATE/demo/county.csv
  say "demo county: taking ten victims through the platform"
  $bin/jiuzhu demo seed --registry $STATE/demo/county.csv --county "$DEMO_COUNTY" \
    --procuratorate "$DEMO_PROCURATORATE" | tee $STATE/demo/cases.txt
  touch $STATE/demo/seeded
fi

# The staff console (http://127.0.0.1:8080): its own database, the console's certificate, the
# demo staff (made once; the same password for all, a code from `jiuzhu-console code <no>`).
export JIUZHU__CONSOLE__TLS_DIR="$STATE_PATH/certs" JIUZHU__CONSOLE__UPLOAD_DIR="$STATE_PATH/uploads"
$bin/jiuzhu-console demo-staff
$bin/jiuzhu-console serve &
pids+=($!)
for _ in $(seq 1 300); do listening 8080 && break; sleep 0.1; done
listening 8080 || { say "the console does not listen on :8080;$(ended) see the log above"; exit 1; }

cat <<TEXT

Jiuzhu is running (Ctrl-C stops it; data stays in $STATE/ and the ${DB_PREFIX}* databases):
  registry   https://127.0.0.1:50051     clues      https://127.0.0.1:50052
  decisions  https://127.0.0.1:50053     payments   https://127.0.0.1:50054
  followup   https://127.0.0.1:50055     provider simulator https://127.0.0.1:50060
  Kafka      ${JIUZHU__KAFKA__BROKERS:-127.0.0.1:9092}      metrics http://127.0.0.1:9101/metrics … 9105
  Every API takes mutual TLS; certificates per role are in $STATE/certs (as-<role>.pem for office
  520100, as-<role>@522701.pem for Qiandongnan).
$( [ -f $STATE/demo/cases.txt ] && sed 's/^/  /' $STATE/demo/cases.txt )

The staff console: http://127.0.0.1:8080 (Simplified Chinese; English in the page header)
  Demo staff, password jiuzhu-demo-2026, office 520100 unless said:
    P-1001 relief prosecutor        J-1001 approver (department head, up to 10,000 yuan)
    J-1002 approver (chief prosecutors' meeting)   F-1001 finance   V-1001 follow-up
    A-0001 auditor and administrator (staff directory)   P-2001 relief prosecutor of 522701
  The authenticator code (changes every 30 s; a real member's phone app shows it):
    $bin/jiuzhu-console code P-1001

Try:
  # 1. A gRPC call by reflection, as the relief prosecutor: the county's clue board
  $bin/jiuzhu call https://127.0.0.1:50052 jiuzhu.clues.v1.CluesService/ListClues \\
      '{"regionCode":"520121"}' --as as-relief_prosecutor
  #    (\`$bin/jiuzhu call URL list --as as-auditor\` names the services; grpcurl works too, with the same certs)
  # 2. What rural revitalization receives under its agreement (Python, confluent-kafka):
  python3 -m venv $STATE/venv && $STATE/venv/bin/pip -q install confluent-kafka protobuf
  $STATE/venv/bin/python examples/python/read_share_topic.py 127.0.0.1:9092 jiuzhu.share.rural_revitalization.v1 docs/jiuzhu.binpb
  # 3. Traces: start Jaeger all-in-one (OTLP on :4317, UI on :16686), then
  JIUZHU__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:4317 make run
TEXT
wait
