
# Standby and failover.  The worker does nothing on a hot standby.  A
# streaming replica is promoted while a drain runs on the primary, which is
# then stopped with -m immediate: the new primary's worker drains the rest,
# reconciles the rows that were in flight, and nothing is sent twice.
#
# This needs synchronous replication: the worker's claims are synchronous
# commits, so once the standby is promoted the old primary cannot claim (and
# so cannot send) anything the new primary does not know was claimed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator(args => [ '--delay-ms', '20' ]);
my $primary = sms_node('primary', $emu,
	init => { allows_streaming => 1 },
	conf => "sms.max_concurrency = 16\n");
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
# synchronous from now on: the standby is there to acknowledge
$primary->append_conf('postgresql.conf', "synchronous_standby_names = '*'\n");
reload_and_wait($primary);
$primary->poll_query_until('postgres',
	q{SELECT sync_state = 'sync' FROM pg_stat_replication})
  or die 'standby not synchronous';

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby in recovery');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sms worker'}),
	0, 'no sms worker on the standby');

queue_messages($primary, 'rb', 100, rollback => 1);
queue_messages($primary, 'fo', 5000, batch => 1000);
$primary->poll_query_until('postgres',
	q{SELECT count(*) >= 1500 FROM sms_outbox WHERE state = 'sent'})
  or die 'drain stalled';

$standby->promote;
note 'standby promoted during the drain';
$primary->stop('immediate');
note 'old primary stopped with -m immediate';

ok($standby->poll_query_until('postgres', q{SELECT worker_pid IS NOT NULL FROM sms_stats}),
	'the promoted standby runs the sms worker');
wait_for_rows($standby,
	q{SELECT count(*) FROM sms_outbox WHERE body LIKE 'fo %' AND state = 'sent'},
	5000, 'after failover: all 5,000 sent');
exactly_once($emu, 'fo', 5000, rolled_back => 'rb');

# The rows the old primary had claimed are looked up at the provider in
# batches: one list request answers for many rows of a sender.
my ($recovered) = slurp_file($standby->logfile) =~
  /(\d+) messages? w\w+ in state sending with no request in flight/;
my $lists = $emu->summary->{lists};
diag("rows in flight at the failover: $recovered; lookup requests: $lists");
ok($recovered > 1, 'rows were in flight at the failover');
cmp_ok($lists, '<', $recovered, 'the lookups answered for several rows each');

$standby->stop;
$emu->stop;
done_testing();
