#!/usr/bin/env bash
# Runs once, when PostgreSQL's volume is first initialised (docker-entrypoint-initdb.d): one
# login role and one database per service, the database owned by its role and closed to every
# other role, because a service never reads another service's database. Passwords come from
# postgres.env (dev-secrets.sh). Later changes to the passwords are not applied: they live in
# the volume from then on.
set -euo pipefail

for service in registry clues decisions payments followup; do
  variable="JIUZHU_DB_PASSWORD_${service^^}"
  if [ -z "${!variable:-}" ]; then
    echo "postgres-init: $variable is not set (run deploy/compose/dev-secrets.sh)" >&2
    exit 1
  fi
  # psql variables quote the name and the password (:"name", :'password').
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="jiuzhu_$service" -v password="${!variable}" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
