
# The auth token revoked in the middle of a drain (20003), then fixed and
# reloaded: nothing failed, lost or duplicated.  DROP EXTENSION and DROP
# DATABASE while the worker is busy: no hang, no crash, and the worker
# serves again once the extension is back.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator(args => [ '--delay-ms', '10' ]);
my $node = sms_node('revoke', $emu,
	conf => "sms.max_concurrency = 16\nrestart_after_crash = off\n");

# --- token revoked mid-drain, then fixed
queue_messages($node, 'rv', 5000, batch => 1000);
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 1000 FROM sms_outbox WHERE state = 'sent'})
  or die 'drain stalled';
$emu->config(auth_token => 'rotated-token');
note 'token revoked at the provider';
wait_for_rows($node, q{SELECT worker FROM sms_stats},
	'paused: authentication failed (20003)', 'revoked token: the queue pauses');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state = 'failed'}), 0,
	'revoked token: nothing failed');
$node->append_conf('postgresql.conf', "sms.auth_token = 'rotated-token'\n");
reload_and_wait($node);
wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'rv %' AND state = 'sent'},
	5000, 'token fixed and reloaded: all 5,000 sent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sms_outbox WHERE state = 'failed'}), 0,
	'nothing failed');
exactly_once($emu, 'rv', 5000);

# --- DROP EXTENSION while busy, then CREATE EXTENSION again
$emu->reset;
queue_messages($node, 'dx', 3000, batch => 1000);
$node->poll_query_until('postgres', q{SELECT count(*) >= 300 FROM sms_outbox WHERE state = 'sent'})
  or die 'drain stalled';
# (how long it takes is a figure of make bench; a hang fails here)
my $worker = $node->safe_psql('postgres', 'SELECT worker_pid FROM sms_stats');
$node->safe_psql('postgres', 'DROP EXTENSION sms',
	timeout => $PostgreSQL::Test::Utils::timeout_default);
pass('DROP EXTENSION while busy returns');
$node->safe_psql('postgres', 'CREATE EXTENSION sms');
my $id = $node->safe_psql('postgres',
	q{SELECT sms_send('+15558679999', '+15017122661', 'after drop and create')});
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE id = $id", 'sent',
	'after DROP and CREATE EXTENSION the worker sends again');
is($node->safe_psql('postgres',
		q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'sms worker'}),
	$worker, 'the worker that sent it is the one that ran through DROP EXTENSION');
ok(!$node->log_contains(qr/(PANIC|terminated by signal)/), 'no crash');

# --- DROP DATABASE of sms.database while busy (WITH FORCE, the worker is connected)
my $db = PostgreSQL::Test::Cluster->new('dropdb');
$db->init;
$db->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sms'
sms.database = 'app'
sms.api_url = '@{[ $emu->url ]}'
sms.account_sid = '$SmsTest::ACCOUNT_SID'
sms.auth_token = 'rotated-token'
sms.max_concurrency = 16
restart_after_crash = off
});
$db->start;
$db->safe_psql('postgres', 'CREATE DATABASE app');
$db->safe_psql('app', 'CREATE EXTENSION sms');
queue_messages($db, 'dd', 3000, batch => 1000, db => 'app');
$db->poll_query_until('app', q{SELECT count(*) >= 300 FROM sms_outbox WHERE state = 'sent'})
  or die 'drain stalled';
$db->safe_psql('postgres', 'DROP DATABASE app WITH (FORCE)',
	timeout => $PostgreSQL::Test::Utils::timeout_default);
pass('DROP DATABASE WITH (FORCE) while busy returns');
is($db->safe_psql('postgres', 'SELECT 1'), 1, 'the server is up');
$db->safe_psql('postgres', 'CREATE DATABASE app');
$db->safe_psql('app', 'CREATE EXTENSION sms');
$db->poll_query_until('app', q{SELECT worker = 'running' FROM sms_stats})
  or die 'worker did not come back';
$id = $db->safe_psql('app', q{SELECT sms_send('+15558679998', '+15017122661', 'after drop database')});
ok($db->poll_query_until('app', "SELECT state FROM sms_outbox WHERE id = $id", 'sent'),
	'after DROP DATABASE and a new one, the worker serves again');
ok(!$db->log_contains(qr/(PANIC|terminated by signal)/), 'no crash');
$db->stop;

$node->stop;
$emu->stop;
done_testing();
