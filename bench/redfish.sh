#!/usr/bin/env bash
# bench/redfish.sh — Redfish service throughput, latency and memory (issue 3).
#
# Starts `cmcd run` on loopback (simulated 4-node chassis, every node SEL
# filled with 1,000 entries, no new SEL events so the payload stays the
# same), logs in (SessionService), and runs wrk (10 connections, 2 threads)
# with X-Auth-Token against GET of the enclosure Chassis and of Node1's SEL
# Entries over HTTPS and plain HTTP. Prints req/s, p50/p99 latency, the
# daemon's peak RSS sampled from /proc during each run and VmHWM, the goal
# figures, and comparisons: HTTPS/HTTP, and both GETs against a second
# daemon started with the answer cache off (CMCD_REDFISH_LOG_CACHE=0).
#
#   bench/redfish.sh            (make bench runs it)   DUR=10s CONNS=10 BIN=bin/cmcd
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/cmcd}
DUR=${DUR:-10s}
CONNS=${CONNS:-10}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "$BIN missing: make build" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/auth.lua" <<'LUA'
wrk.headers["X-Auth-Token"] = os.getenv("TOKEN")
done = function(summary, latency, requests)
	local errs = summary.errors.connect + summary.errors.read + summary.errors.write +
		summary.errors.status + summary.errors.timeout
	io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, errs))
end
LUA

# start NAME [ENV=VAL ...]: starts a daemon, sets PID, HTTPS, HTTP, TOKEN.
start() {
	local name=$1; shift
	local dir="$work/$name"
	mkdir -p "$dir"
	env "$@" "$BIN" run --data "$dir" --board sim --sim-nodes 4 --sim-fill-sel 1000 \
		--sim-sel-rate 0 --sim-fault-rate 0 --sync-interval 1h \
		--redfish 127.0.0.1:0 --insecure-http 127.0.0.1:0 --ipmi "" --ntp "" \
		--log-level info 2>"$dir/log" &
	PID=$!
	pids+=("$PID")
	HTTPS="" HTTP=""
	for _ in $(seq 200); do
		HTTPS=$(grep -o 'url=https://[^ ]*' "$dir/log" | head -1 | sed 's/^url=//; s#/redfish/v1/##') || true
		HTTP=$(grep -o 'url=http://[^ ]*' "$dir/log" | head -1 | sed 's/^url=//; s#/redfish/v1/##') || true
		[ -n "$HTTPS" ] && [ -n "$HTTP" ] && [ -s "$dir/initial-admin-password" ] && break
		kill -0 "$PID" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
		sleep 0.1
	done
	[ -n "$HTTPS" ] && [ -n "$HTTP" ] || { echo "$name: no listeners" >&2; cat "$dir/log" >&2; exit 1; }
	local pw
	pw=$(cat "$dir/initial-admin-password")
	TOKEN=$(curl -sk -D - -o /dev/null -H 'Content-Type: application/json' \
		-d "{\"UserName\":\"admin\",\"Password\":\"$pw\"}" "$HTTPS/redfish/v1/SessionService/Sessions" |
		tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
	[ -n "$TOKEN" ] || { echo "$name: login failed" >&2; exit 1; }
	# The first collection pass must have stored the SEL.
	for _ in $(seq 100); do
		n=$(curl -sk -H "X-Auth-Token: $TOKEN" "$HTTP/redfish/v1/Chassis/Node1/LogServices/SEL/Entries" |
			grep -o '"Members@odata.count":[0-9]*' | cut -d: -f2) || true
		[ "${n:-0}" -ge 1000 ] && break
		sleep 0.1
	done
	echo "# $name: pid $PID, $HTTPS and $HTTP, Node1 SEL ${n:-?} entries"
}

# run LABEL URL: wrk against URL while sampling the daemon's RSS; prints a row.
run() {
	local label=$1 url=$2 peak=0 rss
	(
		while kill -0 "$PID" 2>/dev/null; do
			awk '/^VmRSS/{print $2}' "/proc/$PID/status" 2>/dev/null
			sleep 0.1
		done
	) >"$work/rss" &
	local sampler=$!
	local out
	out=$(TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d"$DUR" --latency -s "$work/auth.lua" "$url" | grep '^RESULT')
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	peak=$(sort -n "$work/rss" | tail -1)
	read -r _ rps p50 p99 reqs errs <<<"$out"
	printf '%-34s %10s %9s %9s %9s %8s\n' "$label" "$rps" "$p50" "$p99" "$((peak / 1024))" "$errs"
	eval "R_${3}=$rps P99_${3}=$p99 RSS_${3}=$peak"
}

echo "# cmcd Redfish benchmark: wrk -t2 -c$CONNS -d$DUR, $(nproc) CPUs"
start main
echo
printf '%-34s %10s %9s %9s %9s %8s\n' "GET" "req/s" "p50 ms" "p99 ms" "RSS MiB" "errors"
run "Chassis/Enclosure  HTTPS" "$HTTPS/redfish/v1/Chassis/Enclosure" ch_tls
run "Chassis/Enclosure  HTTP" "$HTTP/redfish/v1/Chassis/Enclosure" ch_http
run "Node1 SEL (1,000)  HTTPS" "$HTTPS/redfish/v1/Chassis/Node1/LogServices/SEL/Entries" sel_tls
run "Node1 SEL (1,000)  HTTP" "$HTTP/redfish/v1/Chassis/Node1/LogServices/SEL/Entries" sel_http
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")
main_pid=$PID

start nocache CMCD_REDFISH_LOG_CACHE=0
run "Chassis, cache off  HTTP" "$HTTP/redfish/v1/Chassis/Enclosure" ch_nocache
run "Node1 SEL, cache off  HTTP" "$HTTP/redfish/v1/Chassis/Node1/LogServices/SEL/Entries" sel_nocache
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v g="$2" 'BEGIN{ print (v < g) ? "met" : "NOT met" }'; }
echo "SUMMARY Chassis GET p99 HTTPS ${P99_ch_tls} ms, HTTP ${P99_ch_http} ms (goal < 5 ms: $(verdict "$P99_ch_tls" 5) over HTTPS)"
echo "SUMMARY peak RSS under load $((RSS_sel_tls / 1024)) MiB (sampled), VmHWM $((hwm / 1024)) MiB, pid $main_pid (goal < 32 MiB: $(verdict "$((hwm / 1024))" 32))"
echo "SUMMARY HTTPS/HTTP req/s: Chassis $(ratio "$R_ch_tls" "$R_ch_http"), SEL $(ratio "$R_sel_tls" "$R_sel_http")"
echo "SUMMARY Chassis GET cached/uncached req/s (HTTP): $(ratio "$R_ch_http" "$R_ch_nocache") (${R_ch_http} vs ${R_ch_nocache}); p99 ${P99_ch_http} vs ${P99_ch_nocache} ms"
echo "SUMMARY SEL GET cached/uncached req/s (HTTP): $(ratio "$R_sel_http" "$R_sel_nocache") (${R_sel_http} vs ${R_sel_nocache}); p99 ${P99_sel_http} vs ${P99_sel_nocache} ms"
