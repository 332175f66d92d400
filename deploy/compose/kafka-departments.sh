#!/usr/bin/env bash
# Kafka users of the departments' systems and what each may do, for deploy/compose.yaml. Run by
# the `kafka-users` job in the broker's network namespace (its loopback PLAINTEXT listener is a
# super user's), after the services' user `jiuzhu` exists. Safe to run again: users are updated
# and ACLs added once.
#
# Each source in JIUZHU_KAFKA_DEPARTMENTS (dev-secrets.sh writes the list and one password per
# source as JIUZHU_KAFKA_PASSWORD_<SOURCE>) logs in as the user of its own name and may:
#   - write (and describe) its inbound topic   jiuzhu.inbound.<source>.v1
#   - read (and describe) its share topic      jiuzhu.share.<source>.v1
#   - use consumer groups named <source>-…     (to read its share topic)
# and nothing else: the broker refuses what no ACL allows (KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND
# is false). Signatures on inbound messages (jiuzhu-signer, jiuzhu-signature) are checked by the
# services whatever the broker allows.
set -euo pipefail

bootstrap=127.0.0.1:9094
bin=/opt/kafka/bin

for source in ${JIUZHU_KAFKA_DEPARTMENTS:?dev-secrets.sh writes the list of sources}; do
  variable="JIUZHU_KAFKA_PASSWORD_${source^^}"
  password="${!variable:?no password for $source in kafka-users.env}"
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --alter \
    --entity-type users --entity-name "$source" \
    --add-config "SCRAM-SHA-512=[password=$password]"
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --add \
    --allow-principal "User:$source" --operation Write --operation Describe \
    --topic "jiuzhu.inbound.$source.v1"
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --add \
    --allow-principal "User:$source" --operation Read --operation Describe \
    --topic "jiuzhu.share.$source.v1"
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --add \
    --allow-principal "User:$source" --operation Read \
    --group "$source-" --resource-pattern-type prefixed
  echo "kafka-departments: $source may write jiuzhu.inbound.$source.v1 and read jiuzhu.share.$source.v1" >&2
done
