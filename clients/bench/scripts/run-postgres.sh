#!/bin/bash
# run-sqlite.sh on PostgreSQL: a fresh database copied from a seeded template per run.
#
#   run-postgres.sh AUTHD AUTHBENCH SEED_DIR TEMPLATE_DB TAG [SCENARIOS] [authd flags...]
#
# SEED_DIR and TEMPLATE_DB come from one `authbench seed -data-dir SEED_DIR -users $USERS
# -database-url $PG/TEMPLATE_DB`. Each run creates TAG's database WITH TEMPLATE TEMPLATE_DB,
# copies SEED_DIR (its keys) and drops the database afterwards. Environment as run-sqlite.sh,
# plus PG (postgres://postgres@127.0.0.1:5432) and PG_ADMIN_DB (test), the database psql
# connects to for CREATE/DROP.
set -euo pipefail
AUTHD=$1 BENCH=$2 SEED=$3 TEMPLATE=$4 TAG=$5
SCENARIOS=${6:-totp-login,app-password,backup-code,admin-code,email-login,push-login}
shift $(( $# < 6 ? $# : 6 ))
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=bench_run_$(echo "$TAG" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n' _)
psql -q "$PG/${PG_ADMIN_DB:-test}" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB TEMPLATE $TEMPLATE"
trap 'psql -q "$PG/${PG_ADMIN_DB:-test}" -c "DROP DATABASE IF EXISTS $DB" || true' EXIT
"$(dirname "$0")/run-sqlite.sh" "$AUTHD" "$BENCH" "$SEED" "$TAG" "$SCENARIOS" \
	-database-url "$PG/$DB?sslmode=disable" "$@"
