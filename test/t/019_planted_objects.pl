
# Objects planted by roles that are not superusers never run in the worker
# or in the extension's functions.
#
# A database owner (who has CREATE on public, and may ALTER DATABASE ... SET
# search_path) and a role with CREATE on the database (who may create a
# schema named after the worker's role, "$user" on the default path) each
# plant operators and functions with the exact argument types the
# extension's statements use.  Every one of them records its call and, when
# called by a superuser, makes its author superuser.  Then every path of the
# worker runs (send, 429 backoff, 5xx after create and reconciliation,
# start-up recovery, retention) and a superuser uses every function and the
# view: nothing planted may have been called, and nobody became superuser.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('planted', $emu,
	conf => "sms.request_timeout = '1s'\nsms.retention = '1s'\n");
my $su = $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles WHERE oid = 10');

$node->safe_psql('postgres', qq{
CREATE ROLE dbowner LOGIN;
CREATE ROLE creator LOGIN;
ALTER DATABASE postgres OWNER TO dbowner;
GRANT CREATE ON DATABASE postgres TO creator;
-- where the traps write; anyone may insert
CREATE TABLE trap_log (author text, trap text, called_by name, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON trap_log TO PUBLIC;
});

# The traps, created by $author in $schema.  Each records its call, makes
# its author superuser when its caller is one, and otherwise behaves as the
# built-in it shadows, so that nothing else gives the call away.
sub plant
{
	my ($author, $schema) = @_;
	my $s = $schema eq 'public' ? 'public' : qq{"$schema"};
	my $sql = qq{
CREATE FUNCTION $s.trap(name text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO public.trap_log (author, trap, called_by) VALUES ('$author', name, current_user);
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE $author SUPERUSER';
	END IF;
END \$\$;
CREATE FUNCTION $s.state_eq(a sms_state, b sms_state) RETURNS boolean LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('=(sms_state, sms_state)'); RETURN a::text OPERATOR(pg_catalog.=) b::text; END \$\$;
CREATE OPERATOR $s.= (LEFTARG = sms_state, RIGHTARG = sms_state, FUNCTION = $s.state_eq);
CREATE FUNCTION $s.state_ne(a sms_state, b sms_state) RETURNS boolean LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('<>(sms_state, sms_state)'); RETURN a::text OPERATOR(pg_catalog.<>) b::text; END \$\$;
CREATE OPERATOR $s.<> (LEFTARG = sms_state, RIGHTARG = sms_state, FUNCTION = $s.state_ne);
CREATE FUNCTION $s.int_div_num(a integer, b numeric) RETURNS numeric LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('/(integer, numeric)'); RETURN a::numeric OPERATOR(pg_catalog./) b; END \$\$;
CREATE OPERATOR $s./ (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = $s.int_div_num);
CREATE FUNCTION $s.make_interval(secs numeric) RETURNS interval LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('make_interval(numeric)'); RETURN pg_catalog.make_interval(secs => secs::float8); END \$\$;
CREATE FUNCTION $s.make_interval(secs integer) RETURNS interval LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('make_interval(integer)'); RETURN pg_catalog.make_interval(secs => secs); END \$\$;
CREATE FUNCTION $s.unnest(a bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('unnest(bigint[])'); RETURN QUERY SELECT pg_catalog.unnest(a); END \$\$;
CREATE FUNCTION $s.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('unnest(text[])'); RETURN QUERY SELECT pg_catalog.unnest(a); END \$\$;
CREATE FUNCTION $s.now() RETURNS timestamptz LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('now()'); RETURN pg_catalog.now(); END \$\$;
CREATE FUNCTION $s.ts_le(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('<=(timestamptz, timestamptz)'); RETURN a OPERATOR(pg_catalog.<=) b; END \$\$;
CREATE OPERATOR $s.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = $s.ts_le);
CREATE FUNCTION $s.count(bigint) RETURNS bigint LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM $s.trap('count(bigint)'); RETURN 0; END \$\$;
};
	$node->safe_psql('postgres', "SET ROLE $author;\n"
		  . ($schema eq 'public' ? '' : qq{CREATE SCHEMA "$schema";\n})
		  . $sql);
}

plant('dbowner', 'public');
plant('creator', $su);
is($node->safe_psql('postgres', 'SELECT count(*) FROM trap_log'), '0',
	'no trap called while planting');

my $n = 0;

# Every path of the worker, and every function of the extension used by a
# superuser whose session has the database's search_path.
sub exercise
{
	my ($tag) = @_;
	my $to = sub { return sprintf("+1555867%04d", ++$n); };

	# the worker reads the database's settings when it connects
	$node->restart;

	my $first = $node->safe_psql('postgres',
		"SELECT sms_send('@{[ $to->() ]}', '+15017122661', '$tag: plain')");
	wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $first", 'sent',
		"$tag: a message is sent while the traps wait");

	$emu->fault(action => '429', count => 2);
	my $id = $node->safe_psql('postgres',
		"SELECT sms_send('@{[ $to->() ]}', '+15017122661', '$tag: 429 twice')");
	wait_for_rows($node, "SELECT state || ' ' || attempts FROM sms_outbox WHERE id = $id",
		'sent 3', "$tag: 429 twice: backoff, then sent on the third attempt");

	$emu->fault(action => '500_after', count => 1);
	$id = $node->safe_psql('postgres',
		"SELECT sms_send('@{[ $to->() ]}', '+15017122661', '$tag: 500 after create')");
	wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
		"$tag: 500 after create: reconciled to sent");
	is($emu->created_per_body->{"$tag: 500 after create"}, 1,
		"$tag: reconciled, not sent twice");

	# a row left 'sending' by a worker that died: start-up recovery
	$node->safe_psql('postgres', qq{
INSERT INTO sms_outbox (to_number, from_number, body, state, attempts, claimed_by, last_attempt_at)
VALUES ('@{[ $to->() ]}', '+15017122661', '$tag: left sending', 'sending', 1, 0, pg_catalog.now());
});
	$node->restart;
	wait_for_rows($node,
		"SELECT state FROM sms_outbox WHERE body = '$tag: left sending'", 'sent',
		"$tag: a row left sending is recovered, looked up and sent");

	# retention deletes finished rows older than a second
	wait_for_rows($node, "SELECT count(*) FROM sms_outbox WHERE id = $first", '0',
		"$tag: retention deleted an old finished row");

	$id = $node->safe_psql('postgres', qq{
SELECT sms_send('@{[ $to->() ]}', '+15017122661', '$tag: canceled', send_at => pg_catalog.now() + interval '1 hour');
});
	is($node->safe_psql('postgres', "SELECT sms_cancel($id)"), 't', "$tag: sms_cancel works");
	my $num = $to->();
	is($node->safe_psql('postgres',
		"SELECT sms_send('$num', '+15017122661', '$tag: keyed', idempotency_key => '$tag') = sms_send('$num', '+15017122661', '$tag: keyed', idempotency_key => '$tag')"),
		't', "$tag: sms_send with an idempotency key returns the same id twice");
	$node->safe_psql('postgres', qq{
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('@{[ $to->() ]}', '+15017122661', '$tag: inserted');
SELECT * FROM sms_stats;
SELECT sms_segments('x'), sms_encoding('x');
SELECT * FROM sms_worker_condition();
});
	wait_for_rows($node,
		"SELECT string_agg(state::text, ',') FROM sms_outbox WHERE body IN ('$tag: keyed', '$tag: inserted')",
		'sent,sent', "$tag: the keyed and the inserted message are sent");
}

# the default search_path: "$user" (the creator's schema), then public
exercise('default path');
# the database owner puts its schema ahead of pg_catalog for every session
$node->safe_psql('postgres',
	q{SET ROLE dbowner; ALTER DATABASE postgres SET search_path = public, pg_catalog});
exercise('public first');

# --- nothing planted ran, nobody gained anything
my $calls = $node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT author || ': ' || trap || ' as ' || called_by, '; ') FROM trap_log});
is($calls, '', 'no planted operator or function was ever called');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_roles WHERE rolname IN ('dbowner', 'creator') AND rolsuper}),
	'0', 'neither the database owner nor the schema creator became superuser');

# the traps do work: a superuser's own query on the poisoned path calls them
$node->safe_psql('postgres',
	q{SELECT count(*) FROM sms_outbox WHERE state = 'sent'});
isnt($node->safe_psql('postgres', 'SELECT count(*) FROM trap_log'), '0',
	'control: the same operator in a superuser\'s own query is the planted one');

$node->stop;
$emu->stop;
done_testing();
