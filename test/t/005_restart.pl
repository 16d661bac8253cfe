
# The worker survives: kill -9 during a drain (the postmaster restarts the
# cluster and the worker), then every message is sent exactly once; the
# extension refuses to install where it cannot work; secrets stay secret.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

# replies take 30 ms, so a drain of 300 at 8 in flight lasts about a second
my $emu = start_emulator(args => [ '--delay-ms', '30' ]);
my $node = sms_node('restart', $emu,
	conf => "sms.max_concurrency = 8\nrestart_after_crash = on\n");

my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
ok($pid > 0, "the worker runs (pid $pid)");

$node->safe_psql('postgres',
	q{SELECT sms_send('+15558670601', '+15017122661', 'drain ' || i) FROM generate_series(1, 300) i});
wait_for_rows($node, q{SELECT count(*) >= 40 FROM sms_outbox WHERE state = 'sent'}, 't',
	'the drain has started');
my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, "SIGKILL delivered to the worker");

# the postmaster reinitialises and starts a new worker
$node->poll_query_until('postgres', "SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM sms_stats")
  or die 'no new worker';
my $newpid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
isnt($newpid, $pid, "a new worker started ($newpid)");
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE state = 'sent'}, 300,
	'after the kill: all 300 sent');
my $per = $emu->created_per_body;
my @dups = grep { $per->{$_} > 1 } keys %$per;
is(scalar(keys %$per), 300, 'every message created');
is(scalar(@dups), 0, 'none created twice');
$node->wait_for_log(qr/sms worker started/, $log_offset);
pass('the new worker logged its start');

# SIGTERM (pg_terminate_backend) mid-drain: rows stay truthful, the worker returns
$emu->reset;
$node->safe_psql('postgres',
	q{SELECT sms_send('+15558670602', '+15017122661', 'term ' || i) FROM generate_series(1, 200) i});
wait_for_rows($node, q{SELECT count(*) >= 20 FROM sms_outbox WHERE body LIKE 'term %' AND state = 'sent'}, 't');
$pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
# with a timeout, pg_terminate_backend waits until the worker has exited
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 30000)"), 't',
	'the worker exits on SIGTERM');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state = 'sending'}), 0,
	'after SIGTERM no row is left claimed');
wait_for_rows($node, q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'term %' AND state = 'sent'}, 200,
	'after SIGTERM the restarted worker sends the rest');
$per = $emu->created_per_body;
is(scalar(grep { /^term / } keys %$per), 200, 'every message created');
is(scalar(grep { $per->{$_} > 1 } keys %$per), 0, 'none created twice');

# a changed secret is never written to the log: not when the postmaster
# reloads it, nor when the worker applies it and sends with it (the
# emulator, told the new token first, accepts no other from now on)
$log_offset = -s $node->logfile;
$emu->reset;
$emu->config(auth_token => 'a-new-secret-value');
$node->append_conf('postgresql.conf', "sms.auth_token = 'a-new-secret-value'\n");
reload_and_wait($node);
$node->wait_for_log(qr/parameter "sms.auth_token" changed/, $log_offset);
pass('the change itself is logged');
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558670603', '+15017122661', 'with the new token')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'the worker sends with the reloaded token');
is_deeply([ map { $_->{status} } @{ $emu->requests } ], [201],
	'the emulator, which knows only the new token, accepted the one request');
ok(!$node->log_contains(qr/a-new-secret-value/), 'a reloaded token is not logged');

# a non-superuser cannot see the token
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
my ($ret, $out, $err) = $node->psql('postgres', 'SHOW sms.auth_token', extra_params => [ '-U', 'app' ]);
isnt($ret, 0, 'SHOW sms.auth_token fails for a non-superuser');
# (15: "must be superuser or have privileges of pg_read_all_settings",
# 16 on: "permission denied to examine")
like($err, qr/must be superuser|permission denied to examine/, 'with a clear message');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'sms.auth_token'},
		extra_params => [ '-U', 'app' ]), 0, 'pg_settings hides it');
$node->stop;

# without shared_preload_libraries, CREATE EXTENSION says what to set
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->start;
($ret, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION sms');
isnt($ret, 0, 'CREATE EXTENSION without shared_preload_libraries fails');
like($err, qr/sms must be loaded via shared_preload_libraries/, 'the error says why');
like($err, qr/HINT:.*shared_preload_libraries/, 'the hint says what to set');
$bare->stop;

$emu->stop;
done_testing();
