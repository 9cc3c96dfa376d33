#!/bin/sh
# PostgreSQL first-start script (docker-entrypoint-initdb.d): runs once, as the superuser, on
# an empty data directory only. Changing a password in .env later does not reach an existing
# volume: use ALTER ROLE, or drop the volume on a throw-away stack.
#
# One server, two owners that cannot touch each other's data:
#   temporal  may create databases: the temporal-schema job creates `temporal` and
#             `temporal_visibility` with temporal-sql-tool and owns them;
#   spool     owns the `spool` database; `python -m spool.migrate` creates its tables.
# Passwords arrive as psql variables (:'name' quotes them), never spliced into SQL text.
set -eu
: "${PG_TEMPORAL_PASSWORD:?PG_TEMPORAL_PASSWORD is not set}"
: "${PG_SPOOL_PASSWORD:?PG_SPOOL_PASSWORD is not set}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v temporal_password="$PG_TEMPORAL_PASSWORD" -v spool_password="$PG_SPOOL_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE spool LOGIN PASSWORD :'spool_password';
CREATE DATABASE spool OWNER spool;
REVOKE ALL ON DATABASE spool FROM PUBLIC;
SQL
