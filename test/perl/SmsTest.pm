
# SmsTest: what the TAP tests of the sms extension share.
#
# A test starts the Twilio emulator on a free port of 127.0.0.1, and a
# PostgreSQL cluster (PostgreSQL::Test::Cluster) whose sms worker points at
# it; the emulator's control API (/_emulator/...) then tells what arrived.

package SmsTest;

use strict;
use File::Spec;
use warnings;

use Exporter 'import';
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(start_emulator sms_node wait_for_rows queue_messages exactly_once make_cert
  reload_and_wait wait_until);

our $ACCOUNT_SID = 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
our $AUTH_TOKEN = 'emulator-token';

my $json = JSON::PP->new->utf8->canonical;

# Start the emulator; returns an object for its control API.
sub start_emulator
{
	my (%opts) = @_;
	# (port: a restart of an emulator on the port it had)
	my $port = $opts{port} // PostgreSQL::Test::Cluster::get_free_port();
	my $bin = $ENV{SMS_EMULATOR} // 'test/emulator/twilio-emulator';
	# (the emulator accepts any credentials unless told to check them)
	my @cmd = ($bin, '--port', $port, '--quiet', '--check-credentials',
		@{ $opts{args} // [] });
	my $scheme = 'http';

	if ($opts{tls_cert})
	{
		push @cmd, '--tls-cert', $opts{tls_cert}, '--tls-key', $opts{tls_key};
		$scheme = 'https';
	}

	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(\@cmd, \$in, \$out, \$err);
	my $deadline = time() + 10;
	while ($out !~ /listening on/ && time() < $deadline)
	{
		$h->pump_nb;
		usleep(20_000);
	}
	die "emulator did not start: $out $err" unless $out =~ /listening on/;

	my $self = bless {
		handle => $h,
		port => $port,
		url => "$scheme://127.0.0.1:$port",
		cacert => $opts{tls_cert},
		# a test that serves a certificate for another host still reads the
		# control API of its own emulator on 127.0.0.1
		insecure => $opts{insecure_control},
	}, 'SmsTest::Emulator';
	return $self;
}

# A cluster whose worker sends to the emulator, with short retry and
# reconciliation times so that tests run fast; CREATE EXTENSION done.
sub sms_node
{
	my ($name, $emu, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ], %{ $opts{init} // {} });
	my $url = $emu ? $emu->{url} : 'http://127.0.0.1:9';
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'sms'
sms.api_url = '$url'
sms.account_sid = '$ACCOUNT_SID'
sms.auth_token = '$AUTH_TOKEN'
sms.reconcile_grace = '300ms'
sms.retry_base = '50ms'
sms.retry_max = '500ms'
sms.request_timeout = '5s'
sms.reconcile_rate = 1000
} . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION sms')
	  unless $opts{no_extension};
	return $node;
}

# A self-signed certificate and its key, made in $dir for the subject
# alternative names $san (e.g. "IP:127.0.0.1,DNS:localhost"); returns the
# two files' names.
sub make_cert
{
	my ($dir, $name, $san) = @_;
	my ($out, $err) = ('', '');

	# the server reads them from its data directory: no relative names
	$dir = File::Spec->rel2abs($dir);
	IPC::Run::run(
		[
			'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
			'-days', '2', '-subj', '/CN=sms-test',
			'-addext', "subjectAltName=$san",
			'-keyout', "$dir/$name.key", '-out', "$dir/$name.crt"
		],
		'>', \$out, '2>', \$err) or die "openssl failed: $err";
	return ("$dir/$name.crt", "$dir/$name.key");
}

# Wait until $sql (returning one value) returns $expected.
sub wait_for_rows
{
	my ($node, $sql, $expected, $what) = @_;
	my $ok = $node->poll_query_until('postgres', $sql, $expected);
	ok($ok, $what // "waited for: $sql = $expected");
	return $ok;
}

# Wait until $cond (a sub) returns true, polling every 0.1 s for up to
# PostgreSQL::Test::Utils::timeout_default seconds: for events seen outside
# the server (the emulator's request log, a process gone).  A pass or a
# failure either way, never a silent timeout.
sub wait_until
{
	my ($cond, $what) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $ok;
	until ($ok = $cond->())
	{
		last if time() > $deadline;
		usleep(100_000);
	}
	ok($ok, $what);
	return $ok;
}

# Reload the configuration and wait until every running worker has applied
# it (sms_settings_applied_at(): the time each last did, at its start or
# after a SIGHUP); a worker that starts later reads it at its start.
sub reload_and_wait
{
	my ($node, $db) = @_;
	$db //= 'postgres';
	my $before = $node->safe_psql($db, 'SELECT clock_timestamp()');
	$node->reload;
	my $ok = $node->poll_query_until($db,
		qq{SELECT coalesce(sms_settings_applied_at() > '$before', false)});
	ok($ok, 'the workers applied the reloaded configuration');
	return $ok;
}

# Queue $n messages with bodies "$prefix <i>" and distinct To numbers, in
# transactions of $batch, through sms_send (or INSERT when $opts{insert}).
sub queue_messages
{
	my ($node, $prefix, $n, %opts) = @_;
	my $batch = $opts{batch} // $n;
	my $db = $opts{db} // 'postgres';
	my $from = 1;
	my $off = $opts{offset_to} // 0;
	while ($from <= $n)
	{
		my $to = $from + $batch - 1;
		$to = $n if $to > $n;
		my $end = $opts{rollback} ? 'ROLLBACK' : 'COMMIT';
		$node->safe_psql($db, qq{
BEGIN;
SELECT count(sms_send('+1555' || lpad((i + $off)::text, 7, '0'), '+15017122661', '$prefix ' || i))
  FROM generate_series($from, $to) i;
$end;
});
		$from = $to + 1;
	}
}

# The proof: every committed message created at the emulator exactly once,
# every rolled-back one never; prints "lost=L duplicated=D messages=N".
sub exactly_once
{
	my ($emu, $prefix, $n, %opts) = @_;
	my $per = $emu->created_per_body;
	my ($lost, $dup, $ghost) = (0, 0, 0);
	for my $i (1 .. $n)
	{
		my $c = $per->{"$prefix $i"} // 0;
		$lost++ if $c == 0;
		$dup++ if $c > 1;
	}
	if (my $rb = $opts{rolled_back})
	{
		$ghost = grep { /^\Q$rb\E / } keys %$per;
	}
	my $line = "lost=$lost duplicated=$dup messages=$n";
	$line .= " rolled_back_sent=$ghost" if $opts{rolled_back};
	diag($line);
	is($lost, 0, "$prefix: no committed message lost");
	is($dup, 0, "$prefix: no message created twice");
	is($ghost, 0, "$prefix: no rolled-back message sent") if $opts{rolled_back};
	return $lost == 0 && $dup == 0 && $ghost == 0;
}

package SmsTest::Emulator;

use strict;
use warnings;

sub _curl
{
	my ($self, @args) = @_;
	my @cmd = ('curl', '-sS', '--max-time', '30');
	push @cmd, '--cacert', $self->{cacert} if $self->{cacert};
	push @cmd, '--insecure' if $self->{insecure};
	my ($out, $err) = ('', '');
	IPC::Run::run([ @cmd, @args ], '>', \$out, '2>', \$err)
	  or die "curl @args failed: $err";
	return $out;
}

sub url { return $_[0]->{url}; }

sub get_json
{
	my ($self, $path) = @_;
	return $json->decode($self->_curl($self->{url} . $path));
}

# All API requests the emulator saw, oldest first.
sub requests { return $_[0]->get_json('/_emulator/requests'); }

# All messages it created.
sub messages { return $_[0]->get_json('/_emulator/messages'); }

sub summary { return $_[0]->get_json('/_emulator/summary'); }

# Message creates (POST .../Messages.json) seen, as request records.
sub creates
{
	my ($self) = @_;
	return [ grep { $_->{method} eq 'POST' && $_->{path} =~ m{/Messages\.json$} }
		  @{ $self->requests } ];
}

# Messages created per body: { body => count }.
sub created_per_body
{
	my ($self) = @_;
	my %n;
	$n{ $_->{body} // '' }++ for @{ $self->messages };
	return \%n;
}

sub _post_form
{
	my ($self, $path, %form) = @_;
	my @args = ('-X', 'POST');
	push @args, '--data-urlencode', "$_=$form{$_}" for sort keys %form;
	return $self->_curl(@args, $self->{url} . $path);
}

sub fault { my ($self, %rule) = @_; return $self->_post_form('/_emulator/faults', %rule); }
sub clear_faults { my ($self) = @_; return $self->_curl('-X', 'DELETE', $self->{url} . '/_emulator/faults'); }
sub reset { my ($self) = @_; return $self->_post_form('/_emulator/reset'); }
sub config { my ($self, %kv) = @_; return $self->_post_form('/_emulator/config', %kv); }

# Stop the emulator (with SIGTERM, or the signal named: KILL for a crash).
sub stop
{
	my ($self, $signal) = @_;
	return unless $self->{handle};
	$self->{handle}->signal($signal // 'TERM');
	$self->{handle}->finish;
	delete $self->{handle};
}

sub DESTROY { $_[0]->stop; }

1;
