#!/bin/bash
# make demo: a throwaway cluster and the Twilio emulator; messages sent from
# sms_send(), a trigger and a plain INSERT; the rows printed with the SID and
# status the emulator gave them, and the address of the emulator's inbox
# page.  With DEMO_KEEP=1 (make demo DEMO_KEEP=1) the cluster and the
# emulator stay up until interrupted, for a look at the page.  Runs as an
# unprivileged user in $1.
set -euo pipefail

root=${1:?usage: demo.sh SCRATCH_DIR}
cd "$root"

./twilio-emulator --port 0 --quiet > emulator.out 2>&1 &
emulator_pid=$!
data="$root/data"
cleanup()
{
	pg_ctl -D "$data" -m fast stop >/dev/null 2>&1 || true
	kill "$emulator_pid" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 50); do
	grep -q 'listening on' emulator.out && break
	sleep 0.1
done
url=$(sed -n 's/.*listening on \([0-9.:]*\) (\(http\)).*/\2:\/\/\1/p' emulator.out)
echo "== Twilio emulator listening at $url; its inbox page: $url/"

initdb -D "$data" -A trust --encoding=UTF8 --locale=C >/dev/null
cat >> "$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$root'
shared_preload_libraries = 'sms'
sms.database = 'postgres'
sms.api_url = '$url'
sms.account_sid = 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
sms.auth_token = 'emulator-token'
sms.reconcile_grace = '1s'
CONF
pg_ctl -D "$data" -l "$root/server.log" -w start >/dev/null
echo "== PostgreSQL started in $data (log: $root/server.log)"

export PGHOST="$root" PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -f demo.sql

if [ "${DEMO_KEEP:-}" = 1 ]; then
	echo "== the inbox page: $url/ (from this machine); psql: psql -h $root postgres"
	echo "== kept running: Ctrl-C stops the cluster and the emulator"
	wait "$emulator_pid" || true
fi
echo "== the cluster and the emulator stop now; $root can be removed"
