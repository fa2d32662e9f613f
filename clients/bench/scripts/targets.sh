#!/bin/bash
# The figures of issue 18's targets, each from three runs (docs/PERFORMANCE.md,
# "Against the fourth round's targets"):
#
#   targets.sh AUTHD AUTHBENCH NOTIFYD SQLITE_SEED PG_SEED PG_TEMPLATE LABEL
#
#   1. three SQLite runs of every scenario, each followed by a PostgreSQL one;
#   2. three SQLite runs of totp-login paced at half its maximum rate (-half-rate);
#   3. three runs with notifyd apart (its CPU per message), on a nats-server with
#      JetStream of their own on port 14333 (nats-server on PATH).
# Logs: $OUT/LABEL-*.log (OUT as in run-sqlite.sh), each with `uptime` before and after.
set -uo pipefail
AUTHD=$1 BENCH=$2 NOTIFYD=$3 SQ=$4 PGSEED=$5 TEMPLATE=$6 L=$7
HERE=$(dirname "$0")
OUT=${OUT:-/tmp/authbench-runs}
mkdir -p "$OUT"
logged() { # logged NAME command...: uptime, the command's output, uptime
	local log=$OUT/$L-$1.log
	shift
	{ uptime; "$@"; uptime; } >"$log" 2>&1
}
for i in 1 2 3; do
	logged sq-$i "$HERE/run-sqlite.sh" "$AUTHD" "$BENCH" "$SQ" "$L-sq-$i"
	logged pg-$i "$HERE/run-postgres.sh" "$AUTHD" "$BENCH" "$PGSEED" "$TEMPLATE" "$L-pg-$i"
done
for i in 1 2 3; do
	BENCHFLAGS=-half-rate logged half-$i "$HERE/run-sqlite.sh" "$AUTHD" "$BENCH" "$SQ" "$L-half-$i" totp-login
done
# wait_port PORT: until something listens on 127.0.0.1:PORT (at most 10 s), not a guessed sleep.
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}
apart() { # one run with notifyd apart
	local D=$OUT/run-$L-nd-$1
	rm -rf "$D" "$D.nats" && cp -r "$SQ" "$D"
	nats-server -js -a 127.0.0.1 -p 14333 -sd "$D.nats" >"$D.nats.log" 2>&1 &
	local NP=$!
	wait_port 14333
	"$AUTHD" init -data-dir "$D" -nats-url nats://127.0.0.1:14333 >/dev/null
	"$AUTHD" -data-dir "$D" -nats-url nats://127.0.0.1:14333 -listen 127.0.0.1:17853 -metrics-listen 127.0.0.1:17854 \
		-breached-mode off -otp-user-daily-cap 10000 -otp-destination-daily-cap 10000 -push-daily-cap 1000000 >"$D.authd.log" 2>&1 &
	local AP=$!
	"$NOTIFYD" -data-dir "$D" -nats-url nats://127.0.0.1:14333 -outbox -metrics-listen 127.0.0.1:17855 \
		-email-concurrency 16 >"$D.notifyd.log" 2>&1 &
	local NDP=$!
	wait_port 17853 && wait_port 17854 && wait_port 17855
	"$BENCH" run -addr 127.0.0.1:17853 -data-dir "$D" -users "${USERS:-100000}" -duration "${DUR:-5s}" \
		-scenarios totp-login,email-login,push-login -authd-pid $AP -notifyd-pid $NDP \
		-metrics-url http://127.0.0.1:17854/metrics -json "$D.json"
	kill $AP $NDP
	wait $AP $NDP
	kill $NP
	wait $NP
}
for i in 1 2 3; do
	logged nd-$i apart $i
done
