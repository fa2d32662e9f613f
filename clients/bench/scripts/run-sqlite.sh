#!/bin/bash
# One authbench run against a fresh authd on a fresh copy of a seeded SQLite data folder.
#
#   run-sqlite.sh AUTHD AUTHBENCH SEED_DIR TAG [SCENARIOS] [authd flags...]
#
# SEED_DIR is a folder written by `authbench seed -data-dir SEED_DIR -users $USERS`; it is
# copied to $OUT/run-TAG and never written. authd gets the caps the login scenarios need
# (-otp-*-daily-cap, -push-daily-cap) and -breached-mode off; authbench reports authd's CPU
# per request (-authd-pid), its own latency histogram (-metrics-url) and writes
# $OUT/run-TAG.json. Environment: USERS (100000), DUR (5s), OUT (/tmp/authbench-runs),
# BENCHFLAGS (extra authbench flags, e.g. -half-rate).
set -euo pipefail
AUTHD=$1 BENCH=$2 SEED=$3 TAG=$4
SCENARIOS=${5:-totp-login,app-password,backup-code,admin-code,email-login,push-login}
shift $(( $# < 5 ? $# : 5 ))
OUT=${OUT:-/tmp/authbench-runs}
D=$OUT/run-$TAG
mkdir -p "$OUT" && rm -rf "$D" && cp -r "$SEED" "$D"
PORT=$((17000 + RANDOM % 2000))
"$AUTHD" -data-dir "$D" -listen 127.0.0.1:$PORT -metrics-listen 127.0.0.1:$((PORT + 1)) -breached-mode off \
	-otp-user-daily-cap 10000 -otp-destination-daily-cap 10000 -push-daily-cap 1000000 "$@" >"$D.authd.log" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	curl -fs -o /dev/null "http://127.0.0.1:$((PORT + 1))/metrics" && break
	sleep 0.1
done
# shellcheck disable=SC2086 # BENCHFLAGS is a list of flags
"$BENCH" run -addr 127.0.0.1:$PORT -data-dir "$D" -users "${USERS:-100000}" -duration "${DUR:-5s}" \
	-scenarios "$SCENARIOS" -authd-pid $P -metrics-url "http://127.0.0.1:$((PORT + 1))/metrics" \
	${BENCHFLAGS:-} -json "$D.json"
