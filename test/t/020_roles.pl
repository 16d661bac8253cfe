
# Roles are kept apart, and a restore brings rows back as they were.
#
# Two senders, set up with the README's grants, try to cancel, forge and
# block each other's messages; each of the README's grant recipes is tried
# by a fresh login role that has nothing else; rows in every state go
# through pg_dump and pg_restore, with the triggers and, data only, without.
# (A row cannot be dumped in 'sending' by the source's worker's leave: it
# takes such rows back within seconds.  So the row is dumped 'pending' and
# pg_restore's script gets 'sending' for it, as a dump taken while the
# worker was sending it would have.)

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
my $node = sms_node('roles', $emu);

# psql as a given login role
sub as
{
	my ($role, $sql, %opts) = @_;
	return $node->psql('postgres', $sql,
		extra_params => [ '-U', $role ], %opts);
}

sub as_ok
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = as($role, $sql);
	die "as $role: $sql: $err" if $ret != 0;
	return $out;
}

sub one
{
	return $node->safe_psql('postgres', $_[0]);
}

# --- the README's grant recipes, each for a fresh role with nothing else
one(q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE orm LOGIN;
CREATE ROLE monitor LOGIN;
CREATE ROLE operator LOGIN;
GRANT EXECUTE ON FUNCTION sms_send(text, text, text, text[], timestamptz, int, text) TO alice, bob;
GRANT INSERT, SELECT (id) ON sms_outbox TO orm;
GRANT INSERT ON sms_outbox TO bob;
GRANT SELECT ON sms_outbox TO alice, bob;
GRANT EXECUTE ON FUNCTION sms_cancel(bigint) TO alice, bob, operator;
GRANT SELECT ON sms_stats TO monitor;
GRANT EXECUTE ON FUNCTION sms_worker_condition() TO monitor;
GRANT UPDATE ON sms_outbox TO operator;
});

my $a1 = as_ok('alice',
	q{SELECT sms_send('+15558672001', '+15017122661', 'alice: now')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $a1", 'sent',
	'recipe "send": EXECUTE on sms_send is enough to send');
my $o1 = as_ok('orm', q{
INSERT INTO sms_outbox (to_number, from_number, body) VALUES ('+15558672002', '+15017122661', 'orm: row') RETURNING id});
wait_for_rows($node, "SELECT state || ' ' || created_by FROM sms_outbox WHERE id = $o1", 'sent orm',
	'recipe "ORM": INSERT on sms_outbox is enough to send, in its own name');
like(as_ok('monitor', q{SELECT sent || ' ' || worker FROM sms_stats}), qr/^\d+ running$/,
	'recipe "monitoring": sms_stats readable with its grants');
my ($ret, $out, $err) = as('monitor', q{SELECT count(*) FROM sms_outbox});
like($err, qr/permission denied for table sms_outbox/,
	'recipe "monitoring": the messages themselves stay unreadable');
($ret, $out, $err) = as('orm', q{SELECT sms_send('+15558672003', '+15017122661', 'x')});
like($err, qr/permission denied for function sms_send/, 'INSERT alone does not give sms_send');

# --- sms_cancel: a role cancels its own messages only
my $later = q{now() + interval '1 hour'};
my $a2 = as_ok('alice',
	"SELECT sms_send('+15558672004', '+15017122661', 'alice: later', send_at => $later)");
my $b1 = as_ok('bob',
	"SELECT sms_send('+15558672005', '+15017122661', 'bob: later', send_at => $later)");
my $b2 = as_ok('bob',
	"SELECT sms_send('+15558672006', '+15017122661', 'bob: later too', send_at => $later)");
is(as_ok('bob', "SELECT sms_cancel($a2)"), 'f', "bob cannot cancel alice's message");
is(one("SELECT state FROM sms_outbox WHERE id = $a2"), 'pending', "alice's message is still pending");
is(as_ok('alice', "SELECT sms_cancel($a2)"), 't', 'alice cancels her own');
is(as_ok('bob', "SELECT sms_cancel($b1)"), 't', 'bob cancels his own');
is(as_ok('operator', "SELECT sms_cancel($b2)"), 't',
	'a role granted UPDATE on the outbox (an operator) cancels any role\'s');
is(one("SELECT string_agg(state::text, ',' ORDER BY id) FROM sms_outbox WHERE id IN ($a2, $b1, $b2)"),
	'canceled,canceled,canceled', 'each cancel moved exactly its row');

# --- a sender cannot forge the worker's columns
my $forged = as_ok('bob', q{
INSERT INTO sms_outbox (to_number, from_number, body, state, sid, status, attempts,
						price, price_unit, num_segments, error_code, claimed_by,
						sent_at, last_attempt_at, created_by, created_at, next_attempt_at)
VALUES ('+15558672007', '+15017122661', 'bob: forged sent', 'sent',
		'SM00000000000000000000000000000000', 'delivered', 7, 0, 'USD', 9, 30001, 0,
		now(), now(), 'alice', now() - interval '1 year', now() + interval '1 year'),
	   ('+15558672008', '+15017122661', 'bob: forged unknown', 'unknown',
		NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'alice', now(), now()),
	   ('+15558672009', '+15017122661', 'bob: forged canceled', 'canceled',
		NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'alice', now(), now())
RETURNING id});
my @forged = split /\n/, $forged;
is(scalar(@forged), 3, 'three forged rows inserted');
my $ids = join(',', @forged);
wait_for_rows($node,
	"SELECT string_agg(state::text, ',') FROM sms_outbox WHERE id IN ($ids)",
	'sent,sent,sent', 'each forged row was queued as a fresh message and sent');
is(one("SELECT count(*) FROM sms_outbox WHERE id IN ($ids) AND created_by = 'bob' AND attempts = 1
		AND created_at > now() - interval '1 hour' AND error_code IS NULL
		AND sid ~ '^SM[0-9a-f]{32}\$' AND sid <> 'SM00000000000000000000000000000000'"),
	'3', 'each in bob\'s name, with one attempt and the SID the provider gave');
is(one("SELECT count(DISTINCT sid) FROM sms_outbox WHERE id IN ($ids)"), '3',
	'no two rows share a message');
my $per = $emu->created_per_body;
is(join(',', map { $per->{"bob: forged $_"} // 0 } qw(sent unknown canceled)), '1,1,1',
	'each forged row created exactly one message at the provider');

# --- a sender cannot choose ids ahead of the sequence
# the ids the sequence hands out next, which alice's calls would get
my $next = one(q{SELECT last_value + 1 FROM sms_outbox_id_seq});
my $chosen = as_ok('bob', qq{
INSERT INTO sms_outbox (id, to_number, from_number, body)
SELECT $next + i, '+1555867201' || i, '+15017122661', 'bob: chosen id ' || i
  FROM generate_series(0, 4) i RETURNING id});
my @chosen = split /\n/, $chosen;
is(one("SELECT last_value >= " . (sort { $b <=> $a } @chosen)[0] . " FROM sms_outbox_id_seq"), 't',
	'bob\'s rows took their ids from the sequence, not ahead of it');
my $a3 = as_ok('alice', q{
SELECT string_agg(sms_send('+15558672020', '+15017122661', 'alice: after bob chose ids ' || i)::text, ',')
  FROM generate_series(1, 5) i});
is(scalar(split(/,/, $a3)), 5, "alice's five sms_send() calls after bob's chosen ids all queue");
is(one("SELECT count(DISTINCT id) FROM sms_outbox WHERE body LIKE 'alice: after bob chose ids %' OR body LIKE 'bob: chosen id %'"),
	'10', 'ten messages, ten ids');

# --- idempotency keys belong to the role that used them
my $bob_key = as_ok('bob',
	q{SELECT sms_send('+15558672030', '+15017122661', 'bob: took the key', idempotency_key => 'order-42')});
my $alice_key = as_ok('alice',
	q{SELECT sms_send('+15558672031', '+15017122661', 'alice: order 42 shipped', idempotency_key => 'order-42')});
isnt($alice_key, $bob_key, "alice's key is hers: bob's use of it first does not hand her bob's id");
is(as_ok('alice',
	q{SELECT sms_send('+15558672031', '+15017122661', 'alice: order 42 shipped', idempotency_key => 'order-42')}),
	$alice_key, "alice's second call with her key returns her first id");
wait_for_rows($node,
	"SELECT state FROM sms_outbox WHERE id = $alice_key", 'sent', "alice's keyed message is sent");
is($emu->created_per_body->{'alice: order 42 shipped'}, 1, "alice's keyed message sent once");

# --- dump and restore: rows in every state come back as they were
one(q{
INSERT INTO sms_outbox (to_number, from_number, body, state, attempts, next_attempt_at,
						last_attempt_at, claimed_by, sid, status, error_code, error_message,
						num_segments, price, price_unit, sent_at, created_by, created_at)
VALUES
 ('+15558672040', '+15017122661', 'dump: pending', 'pending', 2, now() + interval '1 day', now(), 0, NULL, NULL, NULL, 'backoff', NULL, NULL, NULL, NULL, 'alice', now() - interval '2 days'),
 ('+15558672041', '+15017122661', 'dump: sending', 'pending', 1, now() + interval '1 day', now(), 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'bob', now() - interval '3 days'),
 ('+15558672042', '+15017122661', 'dump: unknown', 'unknown', 3, now() + interval '1 day', now(), 0, NULL, NULL, NULL, 'timeout', NULL, NULL, NULL, NULL, 'orm', now() - interval '4 days'),
 ('+15558672043', '+15017122661', 'dump: sent', 'sent', 1, now(), now(), 0, 'SM11111111111111111111111111111111', 'delivered', NULL, NULL, 2, -0.0158, 'USD', now(), 'alice', now() - interval '5 days'),
 ('+15558672044', '+15017122661', 'dump: failed', 'failed', 1, now(), now(), 0, NULL, NULL, 21211, 'invalid To', NULL, NULL, NULL, NULL, 'bob', now() - interval '6 days'),
 ('+15558672045', '+15017122661', 'dump: canceled', 'canceled', 0, now(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'orm', now() - interval '7 days');
});
my $cols = q{id, to_number, from_number, body, state, attempts, next_attempt_at, last_attempt_at,
	claimed_by, sid, status, error_code, error_message, num_segments, price, price_unit,
	sent_at, created_by, created_at, updated_at};
my $rows_sql = "SELECT $cols FROM sms_outbox WHERE body LIKE 'dump: %' ORDER BY id";
my $before = one($rows_sql);
my $dump = $node->basedir . '/outbox.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');

my $copy = sms_node('restored', $emu, no_extension => 1);
$copy->safe_psql('postgres', 'CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE orm; CREATE ROLE monitor; CREATE ROLE operator;');

# pg_restore's script of the dump, with the row in 'sending'
sub restore_script
{
	my ($name, @opts) = @_;
	my $file = $node->basedir . "/$name.sql";
	$node->command_ok([ 'pg_restore', @opts, '-f', $file, $dump ], "pg_restore @opts");
	my $sql = slurp_file($file);
	my $n = ($sql =~ s/^(\d+\t\S+\t\S+\tdump: sending\t.*?)\tpending\t/$1\tsending\t/m);
	is($n, 1, "$name: the row is in sending in the script");
	open(my $fh, '>', $file) or die;
	print $fh $sql;
	close($fh);
	return $file;
}

my $full = restore_script('full');
$copy->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $copy->connstr('postgres'),
	'-f', $full ], 'restored');
(my $expected = $before) =~ s/^(.*\|dump: sending\|)pending\|/$1unknown|/m;
isnt($expected, $before, 'the expected rows have the sending row as unknown');
# the restored 'sending' row may have gone out: it is 'unknown' until asked,
# the rest exactly as dumped
is($copy->safe_psql('postgres', $rows_sql), $expected,
	'restored: every row as dumped, sender, state, SID and attempts included; sending became unknown');
my $max = one(q{SELECT max(id) FROM sms_outbox});
cmp_ok($copy->safe_psql('postgres',
	q{SELECT sms_send('+15558672050', '+15017122661', 'after restore')}), '>', $max,
	'the identity sequence is restored past every row');
$copy->stop;

# data only, with the triggers disabled, into a live database
my $live = sms_node('live', $emu);
$live->safe_psql('postgres', 'CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE orm;');
my $worker_sql = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sms worker'};
my $worker_pid = $live->safe_psql('postgres', $worker_sql);
my $data = restore_script('data', '--data-only', '--disable-triggers', '-t', 'sms_outbox');
$live->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $live->connstr('postgres'),
	'-f', $data ], 'restored data only, with the triggers disabled');
$live->wait_for_log(qr/sms: 1 message was in state sending with no request in flight/);
ok(1, 'the running worker logs the restored row it found in sending');
ok($live->poll_query_until('postgres',
	q{SELECT state FROM sms_outbox WHERE body = 'dump: sending'}, 'sent'),
	'the running worker notices the restored sending row, asks the provider and sends it');
is($emu->created_per_body->{'dump: sending'}, 1, 'the restored sending row is sent once');
is($live->safe_psql('postgres', $worker_sql), $worker_pid, 'without a restart of the worker');
$live->stop;

$node->stop;
$emu->stop;
done_testing();
