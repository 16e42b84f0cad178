#!/bin/sh
# Run once by the postgres image on a new data directory (/docker-entrypoint-initdb.d): the broker's
# own database, owned by a login role without superuser (TESSERA_DB_USER / TESSERA_DB_PASSWORD).
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v role="$TESSERA_DB_USER" -v password="$TESSERA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
