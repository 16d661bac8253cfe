
# Version 1.0 to 1.1 in place, and a 1.1 database through pg_dump and
# pg_restore, seen from the outside.
#
# ALTER EXTENSION sms UPDATE runs while the worker serves a 1.0 outbox that
# holds a row in every state, one of them in flight at the emulator and one
# held by a paused queue: every row keeps every 1.0 column, the extension,
# the new columns and sms_stats's new columns are there, grants survive, and
# the same worker goes on (the row in flight is written back, the held row
# and a new one are sent, each exactly once).  Then the 1.1 database, again
# with a row in every state, is dumped and restored on a second server: the
# rows come back as they were (the one dumped in 'sending' as 'unknown',
# looked up there rather than sent again), the identity sequence continues,
# and the extension is 1.1.
#
# sms.reconcile_grace is an hour, so that an 'unknown' row stays so; delivery
# status polling is off, so that nothing but the events under test moves a
# row (every comparison is of rows nothing else acts on).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use SmsTest;

my $t0 = time();

# replies held by a 'delay' fault come long after everything they must
# outlast (a few statements and a pg_dump) and well inside the timeout
my $hold_ms = 8000;

my $emu = start_emulator();
my $node = sms_node('upgrade', $emu, no_extension => 1,
	conf => "sms.reconcile_grace = '1h'\nsms.request_timeout = '30s'\nsms.status_poll = off\n");

sub one { return $node->safe_psql('postgres', $_[0]); }

# the outbox's columns, in order, as a list for row(...)
sub columns
{
	my ($n) = @_;
	return $n->safe_psql('postgres', q{
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
  FROM pg_attribute
 WHERE attrelid = 'sms_outbox'::regclass AND attnum > 0 AND NOT attisdropped});
}

# every row, every given column, as text (timestamps in UTC)
sub rows
{
	my ($n, $cols, $where) = @_;
	$where //= '';
	return $n->safe_psql('postgres',
		"SET timezone = 'UTC'; SELECT row($cols)::text FROM sms_outbox $where ORDER BY id");
}

sub state_of
{
	my ($n, $body) = @_;
	return $n->safe_psql('postgres', "SELECT state FROM sms_outbox WHERE body = '$body'");
}

# the SID the emulator created for a body (its only message of that body)
sub emulator_sid
{
	my ($body) = @_;
	my @m = grep { ($_->{body} // '') eq $body } @{ $emu->messages };
	return @m == 1 ? $m[0]{sid} : join(',', map { $_->{sid} } @m);
}

# creates answered 201 for a body
sub creates_of
{
	my ($body) = @_;
	return scalar grep { ($_->{form}{Body} // '') eq $body && $_->{status} == 201 }
	  @{ $emu->creates };
}

######################################################################
# 1. ALTER EXTENSION sms UPDATE, 1.0 to 1.1, while the worker runs
######################################################################

one(q{CREATE EXTENSION sms VERSION '1.0'});
is(one(q{SELECT extversion FROM pg_extension WHERE extname = 'sms'}), '1.0',
	'the extension is installed at version 1.0');

# grants a user makes (README's recipes): a monitoring role reads
# sms_stats, an application role sends and reads the outbox
one(q{
CREATE ROLE monitor LOGIN;
CREATE ROLE app LOGIN;
GRANT SELECT ON sms_stats TO monitor;
GRANT EXECUTE ON FUNCTION sms_worker_condition() TO monitor;
GRANT SELECT ON sms_outbox TO app;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO app;
});

sub as
{
	my ($role, $sql) = @_;
	return $node->psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

# sent, with a SID (one to a number, one to a Messaging Service with media)
one(q{SELECT sms_send('+15558670241', '+15017122661', 'sent 1')});
one(q{SELECT sms_send('+15558670242', 'MG9752274e9e519418a7406176694466fa', 'sent 2',
					  ARRAY['https://example.com/a.png'], priority => 3)});
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE state = 'sent' AND sid LIKE 'SM%'}, 2,
	'1.0: two rows sent, with their SIDs');

# failed: Twilio's magic invalid To
one(q{SELECT sms_send('+15005550001', '+15017122661', 'failed 1')});
wait_for_rows($node, q{SELECT state || ' ' || error_code FROM sms_outbox WHERE body = 'failed 1'},
	'failed 21211', '1.0: a row failed (21211)');

# pending for an hour, and canceled
one(q{SELECT sms_send('+15558670250', '+15017122661', 'later 1',
					  send_at => now() + interval '1 hour', priority => 5,
					  idempotency_key => 'later-1')});
my $cancel_id = one(q{SELECT sms_send('+15558670251', '+15017122661', 'canceled 1',
					  send_at => now() + interval '1 hour')});
is(one("SELECT sms_cancel($cancel_id)"), 't', '1.0: a scheduled row canceled');

# unknown: created at the emulator, answered 500; with an hour's grace it
# stays unknown
$emu->fault(action => '500_after', to => '+15558670243', count => 1);
one(q{SELECT sms_send('+15558670243', '+15017122661', 'unknown 1')});
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE body = 'unknown 1'}, 'unknown',
	'1.0: a row unknown (500 after the message was created)');

# sending: created at the emulator at once, its reply held back
$emu->fault(action => 'delay', to => '+15558670244', delay_ms => $hold_ms, count => 1);
one(q{SELECT sms_send('+15558670244', '+15017122661', 'inflight 1')});
wait_until(sub { emulator_sid('inflight 1') ne '' }, '1.0: the in-flight message reached the emulator');
is(state_of($node, 'inflight 1'), 'sending', '1.0: a row in sending while its reply is held');

# pending, held by a paused queue: the provider refuses the account
$emu->config(auth_token => 'revoked-for-now');
one(q{SELECT sms_send('+15558670245', '+15017122661', 'held 1')});
wait_for_rows($node, q{SELECT worker FROM sms_stats}, 'paused: authentication failed (20003)',
	'1.0: the queue pauses on the refused account');
wait_for_rows($node, q{SELECT state || ' ' || attempts FROM sms_outbox WHERE body = 'held 1'},
	'pending 0', '1.0: the held row is pending, no attempt counted');

# what 1.0 lacks, and the grants as the roles see them
my $cols10 = columns($node);
unlike($cols10, qr/status_changed_at|delivered_at|status_poll_at/, '1.0: no delivery columns');
my ($ret) = $node->psql('postgres', 'SELECT delivered FROM sms_stats');
isnt($ret, 0, '1.0: sms_stats has no delivered column');
($ret) = $node->psql('postgres', 'SELECT sms_settings_applied_at()');
isnt($ret, 0, '1.0: no sms_settings_applied_at()');
my ($r, $out, $err) = as('monitor', 'SELECT worker FROM sms_stats');
is($out, 'paused: authentication failed (20003)', '1.0: monitor reads sms_stats');
my $worker_pid = one('SELECT worker_pid FROM sms_stats');

# The update, in a transaction that first locks the outbox, so that the rows
# read before and after it are the rows as the update found and left them
# (the worker's write-back of the held reply waits for the commit).
my $sep = '=====';
my $txn = one(qq{
SET timezone = 'UTC';
BEGIN;
LOCK TABLE sms_outbox IN ACCESS EXCLUSIVE MODE;
SELECT string_agg(body || '=' || state, ',' ORDER BY id) FROM sms_outbox;
SELECT '$sep';
SELECT row($cols10)::text FROM sms_outbox ORDER BY id;
SELECT '$sep';
ALTER EXTENSION sms UPDATE;
SELECT row($cols10)::text FROM sms_outbox ORDER BY id;
SELECT '$sep';
SELECT extversion FROM pg_extension WHERE extname = 'sms';
SELECT '$sep';
SELECT pending, sending, unknown, sent, failed, canceled,
	   delivered >= 0, undelivered >= 0, delivery_failed >= 0, awaiting_delivery >= 0
  FROM sms_stats;
COMMIT;
});
my ($states, $before, $after, $version, $stats) = split /\n?\Q$sep\E\n/, $txn;
is($states,
	'sent 1=sent,sent 2=sent,failed 1=failed,later 1=pending,canceled 1=canceled,'
	  . 'unknown 1=unknown,inflight 1=sending,held 1=pending',
	'at the update the outbox holds a row in every state');
is($after, $before, 'the update keeps every row and every 1.0 column as it was');
is($version, '1.1', 'the update brings the extension to 1.1');
is($stats, '2|1|1|2|1|1|t|t|t|t',
	'sms_stats after the update: the counts per state and the new delivery columns');

is(one(q{SELECT extversion FROM pg_extension WHERE extname = 'sms'}), '1.1',
	'committed: the extension is 1.1');
my $cols11 = columns($node);
like($cols11, qr/^\Q$cols10\E, /, 'the 1.0 columns come first, as they were');
like($cols11, qr/\b$_\b/, "the outbox has $_") for qw(status_changed_at delivered_at status_poll_at);
is(one(q{SELECT count(*) FROM (SELECT id, status_changed_at, delivered_at, status_poll_at FROM sms_outbox) s}),
	8, 'the new columns can be read');

# the grants, as the roles see them
($r, $out, $err) = as('monitor',
	'SELECT worker IS NOT NULL, delivered >= 0, awaiting_delivery >= 0 FROM sms_stats');
is("$r|$out", '0|t|t|t', 'monitor still reads sms_stats, its new columns included')
  or diag($err);
($r, $out, $err) = as('app', 'SELECT count(*) FROM (SELECT id, delivered_at FROM sms_outbox) s');
is("$r|$out", '0|8', 'app still reads the outbox, its new columns included')
  or diag($err);

# the worker goes on: the refused account fixed and reloaded (a 1.1
# function tells when the worker has applied it), a new message is sent,
# the held one too, and the reply held at the emulator is written back
$emu->config(auth_token => $SmsTest::AUTH_TOKEN);
reload_and_wait($node);
($r, $out, $err) = as('app', q{SELECT sms_send('+15558670246', '+15017122661', 'after 1')});
is($r, 0, 'app sends after the update') or diag($err);
my $after_id = $out;
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $after_id", 'sent',
	'a message queued after the update is sent');
is(creates_of('after 1'), 1, 'it reached the emulator once');
is(one("SELECT sid FROM sms_outbox WHERE id = $after_id"), emulator_sid('after 1'),
	'its row has the SID the emulator made');
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE body = 'held 1'}, 'sent',
	'the row held pending before the update is sent after it');
is(one(q{SELECT sid FROM sms_outbox WHERE body = 'held 1'}), emulator_sid('held 1'),
	'with the SID the emulator made');
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE body = 'inflight 1'}, 'sent',
	'the row in flight across the update is written back as sent');
is(one(q{SELECT sid FROM sms_outbox WHERE body = 'inflight 1'}), emulator_sid('inflight 1'),
	'with the SID of the message created before the update');
exactly_once($emu, 'held', 1);
exactly_once($emu, 'after', 1);
exactly_once($emu, 'inflight', 1);
is(one('SELECT worker_pid FROM sms_stats'), $worker_pid,
	'the worker that served 1.0 serves 1.1, without a restart');

# rows nothing acted on since the update are still as the update left them
my $still = "WHERE body NOT IN ('held 1', 'inflight 1', 'after 1')";
my $untouched = join("\n", grep { !/,"(held 1|inflight 1)",/ } split /\n/, $after);
is(scalar(split /\n/, $untouched), 6, 'six rows nothing acts on');
is(rows($node, $cols10, $still), $untouched,
	'rows nothing acted on since the update are still as they were');

######################################################################
# 2. pg_dump of the 1.1 database, pg_restore on a second server
######################################################################

# a row in 'sending' at the dump: created at the emulator, its reply held
$emu->fault(action => 'delay', to => '+15558670247', delay_ms => $hold_ms, count => 1);
my $dumped_id = one(q{SELECT sms_send('+15558670247', '+15017122661', 'dumpsend 1')});
wait_until(sub { emulator_sid('dumpsend 1') ne '' }, 'the message to be dumped in flight reached the emulator');
is(state_of($node, 'dumpsend 1'), 'sending', 'it is in sending');

is(columns($node), $cols11, 'the columns are those the update made');
is(one(q{SELECT string_agg(s::text, ',' ORDER BY s) FROM (SELECT DISTINCT state s FROM sms_outbox) d}),
	'pending,sending,sent,unknown,failed,canceled', 'the 1.1 outbox has a row in every state');
my $dump_rows = rows($node, $cols11);
my $dump = $node->basedir . '/sms.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump -Fc');
is(rows($node, $cols11), $dump_rows, 'no row changed while pg_dump ran: the dump holds these rows');

# the dump has the row in 'sending' (pg_restore's script of the outbox's data)
my $script = $node->basedir . '/outbox.sql';
$node->command_ok([ 'pg_restore', '--data-only', '-t', 'sms_outbox', '-f', $script, $dump ],
	'pg_restore to a script');
like(slurp_file($script), qr/^$dumped_id\t[^\n]*\tdumpsend 1\t[^\n]*\tsending\t/m,
	'the dump has the in-flight row in sending');

# A second server, whose worker serves the database restored into
# (CREATE EXTENSION, which pg_restore runs, is refused anywhere else).
my $copy = sms_node('restored', $emu, no_extension => 1,
	conf => "sms.status_poll = off\n");
$copy->safe_psql('postgres', 'CREATE ROLE monitor LOGIN; CREATE ROLE app LOGIN;');
$copy->command_ok([ 'pg_restore', '--exit-on-error', '-d', $copy->connstr('postgres'), $dump ],
	'pg_restore into the second server');
is($copy->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'sms'}),
	'1.1', 'the restored extension is 1.1');
is(columns($copy), $cols11, 'the restored outbox has the same columns');

# every row as dumped, every column; the one dumped in 'sending' may have
# gone out, so it comes back 'unknown' and is looked up (below)
my $others = "WHERE id <> $dumped_id";
my @dumped = split /\n/, $dump_rows;
is(scalar(grep { /^\($dumped_id,/ } @dumped), 1, 'the in-flight row was among the dumped rows');
is(rows($copy, $cols11, $others), join("\n", grep { !/^\($dumped_id,/ } @dumped),
	'restored: every other row exactly as dumped, every column');
my $kept = 'id, to_number, from_number, body, media_urls, send_at, priority, idempotency_key,'
  . ' attempts, created_at, created_by';
is(rows($copy, $kept, "WHERE id = $dumped_id"),
	$node->safe_psql('postgres', "SET timezone = 'UTC'; SELECT row($kept)::text FROM sms_outbox WHERE id = $dumped_id"),
	'restored: the in-flight row with its message, sender, attempts and claim as dumped');
like(state_of($copy, 'dumpsend 1'), qr/^(unknown|sent)$/,
	'restored: the row dumped in sending is unknown (or already found), never pending');

# grants come back with the objects
is($copy->safe_psql('postgres',
		q{SELECT has_table_privilege('monitor', 'sms_stats', 'SELECT'),
				 has_function_privilege('monitor', 'sms_worker_condition()', 'EXECUTE'),
				 has_table_privilege('app', 'sms_outbox', 'SELECT'),
				 has_function_privilege('app', 'sms_send(text, text, text, text[], timestamptz, int, text)', 'EXECUTE'),
				 has_table_privilege('app', 'sms_outbox', 'INSERT')}),
	't|t|t|t|f', 'restored: the grants as they were');

# the restored row in sending is looked up and found, not sent again; the
# source's worker gets the held reply for the same message
ok($copy->poll_query_until('postgres', q{SELECT state FROM sms_outbox WHERE body = 'dumpsend 1'}, 'sent'),
	'restored: the row dumped in sending is found at the provider');
wait_for_rows($node, q{SELECT state FROM sms_outbox WHERE body = 'dumpsend 1'}, 'sent',
	'source: the in-flight row is written back');
my $sid = emulator_sid('dumpsend 1');
like($sid, qr/^SM[0-9a-f]{32}$/, 'one message at the emulator for it');
is($copy->safe_psql('postgres', q{SELECT sid FROM sms_outbox WHERE body = 'dumpsend 1'}), $sid,
	'restored: the row has the SID of the message created before the dump');
is(one(q{SELECT sid FROM sms_outbox WHERE body = 'dumpsend 1'}), $sid, 'source: the same SID');
exactly_once($emu, 'dumpsend', 1);

# the identity sequence continues past every restored row
my $max = $copy->safe_psql('postgres', 'SELECT max(id) FROM sms_outbox');
cmp_ok($max, '>=', $dumped_id, 'the restored rows include the last dumped id');
my $new_id = $copy->safe_psql('postgres',
	q{SELECT sms_send('+15558670248', '+15017122661', 'restored 1')});
cmp_ok($new_id, '>', $max, 'a message queued in the restored database gets a new id past every restored one');

ok(!$node->log_contains(qr/PANIC|terminated by signal/), 'source: no crash');
ok(!$copy->log_contains(qr/PANIC|terminated by signal/), 'restored: no crash');

diag(sprintf('024_upgrade_dump ran for %.1f s', time() - $t0));
$copy->stop;
$node->stop;
$emu->stop;
done_testing();
