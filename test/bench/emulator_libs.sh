#!/bin/bash
# What the emulator's libraries cost: the emulator as it was before it used
# libmicrohttpd's form parsing and jansson (hand-written form.c and json.c,
# OLD_REV) against the one in this tree, with wrk, in alternating pairs on
# the same machine, so that its drifting speed falls on both alike.  Prints
# figures; it is not a test.  Usage, from the top of the tree:
#
#   test/bench/emulator_libs.sh            # 5 pairs of 5 s per request
#   PAIRS=3 SECS=3 test/bench/emulator_libs.sh
#
# Two requests: the create the benchmarks' wrk ceiling uses (test/bench/
# run.sh, wrk_ceiling), and a list of 50 messages (50 message objects to
# write).  Each run is wrk -t2 -c32 on a fresh emulator state (reset,
# and for the list 100 messages created first).  The ratio is new / old
# requests per second.  Each run also gives the emulator's CPU time per
# request (user + system, from /proc), which the machine's noise moves
# less and which compares with the worker's CPU per message that make
# bench prints.  And the memory a create takes (resident set growth over
# an emulator's first create run divided by its creates: the message and
# its request log entry).
#
# Everything listens on 127.0.0.1.  Each pair runs under the lock the
# project's benchmarks share (/tmp/sms-bench.lock).
set -euo pipefail

OLD_REV=${OLD_REV:-31f4716}		# the last commit before the libraries
PAIRS=${PAIRS:-5}
SECS=${SECS:-5}
LOCK=${LOCK:-/tmp/sms-bench.lock}

top=$(git rev-parse --show-toplevel)
work=$(mktemp -d /tmp/emulator-libs.XXXXXX)
old_pid=
new_pid=
cleanup()
{
	[ -n "$old_pid" ] && kill "$old_pid" 2>/dev/null || true
	[ -n "$new_pid" ] && kill "$new_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mkdir "$work/old"
git -C "$top" archive "$OLD_REV" test/emulator | tar -x -C "$work/old"
make -s -C "$work/old/test/emulator" twilio-emulator >/dev/null
make -s -C "$top/test/emulator" twilio-emulator >/dev/null

# start NAME BINARY: an emulator on a free port; sets NAME_pid, NAME_url
start()
{
	local fifo="$work/$1.out" line
	mkfifo "$fifo"
	"$2" --port 0 --quiet > "$fifo" &
	eval "$1_pid=$!"
	read -r line < "$fifo"
	eval "$1_url=http://127.0.0.1:$(echo "$line" | sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p')"
}
start old "$work/old/test/emulator/twilio-emulator"
start new "$top/test/emulator/twilio-emulator"

acct=ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
auth="Basic QUNhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYTplbXVsYXRvci10b2tlbg=="
cat > "$work/create.lua" <<LUA
wrk.method = "POST"
wrk.path = "/2010-04-01/Accounts/$acct/Messages.json"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "pg-sms/1.1 (PostgreSQL extension)"
wrk.headers["Authorization"] = "$auth"
wrk.body = "To=%2B15550012345&From=%2B15017122661&Body=bench-1%2012345"
LUA
cat > "$work/list.lua" <<LUA
wrk.method = "GET"
wrk.path = "/2010-04-01/Accounts/$acct/Messages.json?PageSize=50"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "$auth"
LUA
for i in $(seq 100); do
	printf 'url = "/2010-04-01/Accounts/%s/Messages.json"\n' "$acct"
	printf 'data = "To=%%2B1555001%04d&From=%%2B15017122661&Body=seed%%20%d%%20%s"\n' "$i" "$i" \
		"with%20a%20body%20of%20ordinary%20length%2C%20like%20a%20reminder%20or%20a%20code"
	printf 'user = "%s:emulator-token"\noutput = "/dev/null"\n' "$acct"
	[ "$i" -lt 100 ] && printf 'next\n'
done > "$work/seed.curl"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# count URL KEY: a counter from the summary (creates, lists)
count() { curl -s "$1/_emulator/summary" | sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

# run NAME KIND: one wrk run; sets rate (requests/s) and cpu (emulator
# CPU us per request).  An emulator's first create run, on a fresh
# process, also sets NAME_bytes: what a create took (resident set growth
# / creates); later runs reuse memory freed by the resets.
declare -A rate cpu
run()
{
	local url pid rss ticks n
	eval "url=\$$1_url pid=\$$1_pid"
	curl -s -X POST "$url/_emulator/reset" >/dev/null
	[ "$2" = list ] && sed "s|^url = \"|url = \"$url|" "$work/seed.curl" |
		curl -s -o /dev/null -K -
	rss=$(rss_kb "$pid")
	ticks=$(cpu_ticks "$pid")
	rate[$1]=$(wrk -t2 -c32 -d"${SECS}s" -s "$work/$2.lua" "$url" |
		awk '/Requests\/sec/ {printf "%.0f", $2}')
	ticks=$(( $(cpu_ticks "$pid") - ticks ))
	n=$(count "$url" "${2}s")
	cpu[$1]=$(awk -v t="$ticks" -v u="$tick_us" -v n="$n" 'BEGIN {printf "%.1f", t * u / n}')
	if [ "$2" = create ] && eval "[ -z \"\${$1_bytes:-}\" ]"; then
		eval "$1_bytes=$(( ($(rss_kb "$pid") - rss) * 1024 / n ))"
	fi
}

exec 9>"$LOCK"
echo "emulator before the libraries ($OLD_REV) against this tree: wrk -t2 -c32 -d${SECS}s, $PAIRS pairs"
for kind in create list; do
	case $kind in
	create) echo "POST Messages.json (run.sh's wrk_ceiling request), req/s:" ;;
	list) echo "GET Messages.json?PageSize=50 (100 messages stored), req/s:" ;;
	esac
	ratios=
	cpu_ratios=
	for p in $(seq "$PAIRS"); do
		flock 9
		# alternate which goes first, so a drift within a pair cancels out
		if [ $((p % 2)) -eq 1 ]; then run old $kind; run new $kind;
		else run new $kind; run old $kind; fi
		flock -u 9
		ratio=$(awk -v o="${rate[old]}" -v n="${rate[new]}" 'BEGIN {printf "%.3f", n / o}')
		cpu_ratio=$(awk -v o="${cpu[old]}" -v n="${cpu[new]}" 'BEGIN {printf "%.2f", n / o}')
		ratios="$ratios $ratio"
		cpu_ratios="$cpu_ratios $cpu_ratio"
		printf '  pair %d: old %6d req/s %5s us/req   new %6d req/s %5s us/req   new/old %s (CPU %s)\n' \
			"$p" "${rate[old]}" "${cpu[old]}" "${rate[new]}" "${cpu[new]}" "$ratio" "$cpu_ratio"
	done
	printf '  median new/old: %s req/s, %s CPU per request\n' \
		"$(printf '%s\n' $ratios | median)" "$(printf '%s\n' $cpu_ratios | median)"
done
echo "memory per create (message and request log entry), first run: old ${old_bytes} bytes, new ${new_bytes} bytes"
