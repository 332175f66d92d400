#!/usr/bin/env bash
# `make run`: everything built so far on this machine — PostgreSQL (one database per service),
# the local Kafka-protocol broker on 127.0.0.1:9092, and the five services. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=(registry clues decisions payments followup)
export JIUZHU_CONFIG_DIR=${JIUZHU_CONFIG_DIR:-deploy/config}

deploy/dev/postgres.sh
broker=$(deploy/dev/broker.sh start 9092)
for service in "${SERVICES[@]}"; do
  exists=$(psql -h 127.0.0.1 -U postgres -d postgres -At -c "SELECT 1 FROM pg_database WHERE datname = 'jiuzhu_$service'")
  [ "$exists" = 1 ] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE jiuzhu_$service"
done
cargo build --workspace --bins

# The master key that wraps every person's data key: made once per checkout, never committed.
# Losing it makes all personal data unreadable; a real installation keeps it in its secret store.
mkdir -p .jiuzhu
if [ -z "${JIUZHU__VAULT__MASTER_KEY:-}" ] && [ ! -s .jiuzhu/master.key ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 > .jiuzhu/master.key)
  echo "created the development master key .jiuzhu/master.key" >&2
fi
[ -n "${JIUZHU__VAULT__MASTER_KEY:-}" ] || export JIUZHU__VAULT__MASTER_KEY_FILE="$PWD/.jiuzhu/master.key"

# A demo recommendation model, trained once on synthetic past cases (a real installation
# trains on its own history: `jiuzhu recommend train --history cases.jsonl --out model.json`).
if [ -z "${JIUZHU__RECOMMENDER__MODEL:-}" ]; then
  if [ ! -s .jiuzhu/recommender.json ]; then
    echo "training the demo recommendation model (synthetic past cases)..." >&2
    target/debug/jiuzhu gen relief-history --cases 5000 --seed 1 --out .jiuzhu/relief-history.jsonl
    target/debug/jiuzhu recommend train --history .jiuzhu/relief-history.jsonl \
      --out .jiuzhu/recommender.json --version demo-synthetic --evaluate 500 >&2
  fi
  export JIUZHU__RECOMMENDER__MODEL="$PWD/.jiuzhu/recommender.json"
fi

# Every API is served over mutual TLS: a development authority and certificates, made once per
# checkout (`jiuzhu dev certs`; never committed; an installation uses its own).
if [ ! -s .jiuzhu/certs/ca.pem ]; then
  target/debug/jiuzhu dev certs --out .jiuzhu/certs >&2
fi
export JIUZHU__TLS__DIR="$PWD/.jiuzhu/certs"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
  if [ "$broker" = started ]; then deploy/dev/broker.sh stop 9092; fi
}
trap stop INT TERM EXIT
for service in "${SERVICES[@]}"; do
  "target/debug/jiuzhu-$service" serve &
  pids+=($!)
done
# The payment provider simulator: answers "pending", then notifies payments (each notice twice,
# as real gateways do). Accounts starting 6222029990 are refused, 6222029991 refused once,
# 6222029992 paid without an answer (see `target/debug/jiuzhu-paysim --help`).
target/debug/jiuzhu-paysim --listen 127.0.0.1:50060 --notify https://127.0.0.1:50054 \
  --tls-dir .jiuzhu/certs \
  --asynchronous --duplicate-notices 1 --latency-ms 20 \
  --scenario 6222029990=reject --scenario 6222029991=flaky --scenario 6222029992=timeout &
pids+=($!)
sleep 2
cat <<'TEXT'

Jiuzhu is running (Ctrl-C stops it):
  registry   grpc://127.0.0.1:50051     clues      grpc://127.0.0.1:50052
  decisions  grpc://127.0.0.1:50053     payments   grpc://127.0.0.1:50054
  followup   grpc://127.0.0.1:50055     Kafka      127.0.0.1:9092
  provider simulator grpc://127.0.0.1:50060 (jiuzhu.gateway.v1)
  metrics    http://127.0.0.1:9101/metrics … 9105 (registry … followup)

Every API takes mutual TLS: certificates are in .jiuzhu/certs (one per role: as-<role>.pem).
Try (grpcurl uses reflection; G="grpcurl -cacert .jiuzhu/certs/ca.pem -cert .jiuzhu/certs/cli.pem -key .jiuzhu/certs/cli.key"):
  $G -d '{"request_id":"demo-1","full_name":"王秀英","gender":"GENDER_FEMALE","birth_date":"1949-12-31","resident_id":"11010519491231002X","region":{"code":"110105"},"source_department":"rural_revitalization"}' 127.0.0.1:50051 jiuzhu.registry.v1.RegistryService/RegisterPerson
  $G 127.0.0.1:50052 jiuzhu.clues.v1.CluesService/GetLinkageIndexStatus
  $G -d '{"request_id":"case-1","case_no":"(2026)京0105刑初1号","party_ref":"P1","procuratorate":"朝阳区院","role":"PARTY_ROLE_VICTIM","harm":{"disability_grade":5},"full_name":"王秀英","birth_date":"1949年12月31日","region":{"code":"110105"}}' 127.0.0.1:50052 jiuzhu.clues.v1.CluesService/ReportParty
  $G -d '{"filter":"DEADLINE_FILTER_DUE_SOON"}' 127.0.0.1:50053 jiuzhu.decisions.v1.DecisionsService/ListDeadlines
  $G -d '{"request_id":"budget-1","procuratorate":"朝阳区院","amount":{"fen":10000000},"document_reference":"京财行〔2026〕1号","allocated_by":"finance-1"}' 127.0.0.1:50054 jiuzhu.payments.v1.PaymentsService/AllocateBudget
  $G 127.0.0.1:50060 jiuzhu.gateway.v1.SimulatorService/ExportStatement
  $G -d '{"overdue":true}' 127.0.0.1:50055 jiuzhu.followup.v1.FollowupService/ListVisits
Departments read jiuzhu.share.<department>.v1 (every topic: docs/asyncapi.json), e.g.
  make descriptors && python examples/python/read_share_topic.py 127.0.0.1:9092 jiuzhu.share.civil_affairs.v1 target/jiuzhu.binpb
Traces: set JIUZHU__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:4317 (Jaeger all-in-one) before make run.
TEXT
wait
