#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's two PostgreSQL databases when missing
# and bring both schemas to the version this admin-tools image ships. The server starts only
# after this exits 0. Safe on every `docker compose up`: setup-schema leaves an existing
# schema alone and update-schema applies only what is new, which is how an upgrade of the
# image tags gets its schema changes before the new server runs.
#
# Environment: SQL_HOST, SQL_USER, SQL_PASSWORD (read by temporal-sql-tool itself, so the
# password is not on a command line); SQL_PORT (default 5432); TEMPORAL_SCHEMA_DIR (default: where
# admin-tools keeps the schema; `make cluster` points it at the server module's own schema/).
set -eu
: "${SQL_HOST:?SQL_HOST is not set}"
: "${SQL_USER:?SQL_USER is not set}"
: "${SQL_PASSWORD:?SQL_PASSWORD is not set}"
port=${SQL_PORT:-5432}
schema_root=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p "$port" -u "$SQL_USER" "$@"
}

for db in temporal temporal_visibility; do
    case $db in
        temporal) schema_dir=$schema_root/temporal/versioned ;;
        *) schema_dir=$schema_root/visibility/versioned ;;
    esac
    # CREATE DATABASE has no IF NOT EXISTS: after the first run this fails with "already
    # exists", which is the one failure that means the database is there. Anything else
    # (bad password, server down) stops the job.
    if ! out=$(sql_tool --db "$db" create-database 2>&1); then
        case $out in
            *"already exists"*) echo "database $db: exists" ;;
            *) echo "$out" >&2; exit 1 ;;
        esac
    else
        echo "database $db: created"
    fi
    sql_tool --db "$db" setup-schema -v 0.0
    sql_tool --db "$db" update-schema -d "$schema_dir"
done
echo "temporal schema: ready"
