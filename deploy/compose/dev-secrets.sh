#!/usr/bin/env bash
# Development-only secrets for deploy/compose.yaml, written into deploy/compose/secrets/ (ignored
# by git, never committed, never copied into an image). Run it once before
#   docker compose -f deploy/compose.yaml up --build
# Running it again only fills in what is missing: PostgreSQL and Kafka keep the passwords they
# were first given in their volumes, so existing files are never replaced. `--force` starts
# over; then also drop the volumes (`docker compose -f deploy/compose.yaml down -v`), which
# deletes all data.
#
# Writes (needs only openssl):
#   kafka/kafka.keystore.p12, kafka/keystore_creds, kafka/key_creds
#                       the broker's TLS key and certificate (host name `kafka`) in the layout
#                       the apache/kafka image reads from /etc/kafka/secrets
#   kafka/ca.pem        the authority of that certificate: the services' ssl.ca.location
#   kafka-users.env     the SCRAM-SHA-512 password of the Kafka user `jiuzhu` (the services), and
#                       of one user per department's system (DEPARTMENTS below), for
#                       kafka-departments.sh
#   departments/<name>.properties
#                       a department's Kafka client settings (librdkafka / confluent-kafka
#                       names): its user, password and the broker's authority
#   production.toml     the services' Kafka client settings (SASL_SSL) with that password,
#                       from production.toml.in
#   postgres.env        the PostgreSQL superuser's password and one password per service role
#   <service>.env       PGPASSWORD for that service's role (its database URL has none)
#   audit.key           the key of every service's audit chain (32 random bytes, base64)
#   master.key          the vault master key (32 random bytes, base64) of registry and clues:
#                       losing it makes every person's data in these volumes unreadable
#
# The mutual-TLS certificates of the APIs are not made here: compose's `certs` job runs
# `jiuzhu dev certs` into the `certs` volume.
#
# A real installation takes all of this from its own secret store and authority
# (deploy/README.md, deploy/k8s/secret.example.yaml).
set -euo pipefail
cd "$(dirname "$0")"

SERVICES=(registry clues decisions payments followup)
# Every source of inbound messages (the departments that feed the registry, share or answer
# referrals, and the case systems): one Kafka user each, limited to its own topics.
DEPARTMENTS=(rural_revitalization civil_affairs human_resources education health finance
  industry_commerce cases)
out=secrets

if [ "${1:-}" = --force ]; then
  rm -rf "$out"
fi
mkdir -p "$out/kafka"
# Readable by everyone (0644): the containers run as other users than you (Kafka as uid 1000,
# Jiuzhu as 10001, PostgreSQL as 999) and bind mounts keep the host's owner and mode. Tolerable
# for throwaway development secrets on your own machine only.
umask 022

password() { openssl rand -hex 24; }

kafka=$out/kafka
if [ ! -s "$kafka/kafka.keystore.p12" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  store=$(password)
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
    -subj "/CN=Jiuzhu Kafka development CA (not for production)" \
    -keyout "$work/ca.key" -out "$kafka/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kafka" \
    -keyout "$work/broker.key" -out "$work/broker.csr" 2>/dev/null
  # librdkafka checks the broker's host name (ssl.endpoint.identification.algorithm=https).
  printf 'subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$work/broker.ext"
  openssl x509 -req -in "$work/broker.csr" -CA "$kafka/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days 825 -extfile "$work/broker.ext" \
    -out "$work/broker.pem" 2>/dev/null
  openssl pkcs12 -export -name kafka -in "$work/broker.pem" -inkey "$work/broker.key" \
    -certfile "$kafka/ca.pem" -passout "pass:$store" -out "$kafka/kafka.keystore.p12"
  # openssl writes the store owner-only; the broker runs as another user (see umask above).
  chmod 0644 "$kafka/kafka.keystore.p12"
  # A PKCS#12 store has one password for the store and its key.
  printf '%s' "$store" >"$kafka/keystore_creds"
  printf '%s' "$store" >"$kafka/key_creds"
  echo "dev-secrets: wrote the Kafka broker's development TLS keystore" >&2
fi

if [ ! -s "$out/kafka-users.env" ] || [ ! -s "$out/production.toml" ]; then
  kafka_password=$(password)
  sed "s/@KAFKA_PASSWORD@/$kafka_password/" production.toml.in >"$out/production.toml"
  printf 'JIUZHU_KAFKA_PASSWORD=%s\n' "$kafka_password" >"$out/kafka-users.env"
  echo "dev-secrets: wrote the Kafka user's password and the services' production.toml" >&2
fi

if ! grep -q '^JIUZHU_KAFKA_DEPARTMENTS=' "$out/kafka-users.env"; then
  mkdir -p "$out/departments"
  printf 'JIUZHU_KAFKA_DEPARTMENTS=%s\n' "${DEPARTMENTS[*]}" >>"$out/kafka-users.env"
  for department in "${DEPARTMENTS[@]}"; do
    department_password=$(password)
    printf 'JIUZHU_KAFKA_PASSWORD_%s=%s\n' "${department^^}" "$department_password" \
      >>"$out/kafka-users.env"
    cat >"$out/departments/$department.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=$department
sasl.password=$department_password
ssl.ca.location=$PWD/$kafka/ca.pem
PROPERTIES
  done
  echo "dev-secrets: wrote a Kafka user for each department's system (departments/*.properties)" >&2
fi

if [ ! -s "$out/postgres.env" ]; then
  {
    printf 'POSTGRES_PASSWORD=%s\n' "$(password)"
    for service in "${SERVICES[@]}"; do
      service_password=$(password)
      printf 'JIUZHU_DB_PASSWORD_%s=%s\n' "${service^^}" "$service_password"
      printf 'PGPASSWORD=%s\n' "$service_password" >"$out/$service.env"
    done
  } >"$out/postgres.env"
  echo "dev-secrets: wrote the database passwords" >&2
fi

if [ ! -s "$out/master.key" ]; then
  head -c 32 /dev/urandom | base64 >"$out/master.key"
  echo "dev-secrets: wrote the development master key $PWD/$out/master.key" >&2
fi

if [ ! -s "$out/audit.key" ]; then
  head -c 32 /dev/urandom | base64 >"$out/audit.key"
  echo "dev-secrets: wrote the development audit key $PWD/$out/audit.key" >&2
fi
