# Delivery status by signed callbacks, end to end: the worker passes
# StatusCallback with each create; the emulator moves each message on like
# Twilio (delivered, or undelivered / failed with the codes its magic
# numbers choose), POSTs each change, signed, to a receiver on 127.0.0.1
# written here in core Perl, which hands the URL, the raw body and the
# X-Twilio-Signature header to sms_status_callback() and answers 200, or
# 500 when the function refused.  Callbacks come shuffled.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $emu = start_emulator();
$emu->config(callback_order => 'shuffle');

my $listener = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Listen => 64,
	ReuseAddr => 1) or die "cannot listen: $!";
my $port = $listener->sockport;
my $callback_url = "http://127.0.0.1:$port/sms/status";

my $node = sms_node('callbacks', $emu,
	conf => "sms.status_callback_url = '$callback_url'\nsms.status_poll = off\n");

# the receiver: one connection at a time, each callback one psql call
my $receiver = fork();
die "fork: $!" unless defined $receiver;
if ($receiver == 0)
{
	while (my $c = $listener->accept)
	{
		my ($line, %h, $body) = (scalar <$c>);
		next unless defined $line;
		my ($method, $target) = $line =~ m{^(\S+) (\S+)};
		while (my $l = <$c>)
		{
			$l =~ s/\r?\n$//;
			last if $l eq '';
			my ($k, $v) = split /:\s*/, $l, 2;
			$h{ lc $k } = $v;
		}
		read($c, $body, $h{'content-length'} // 0);
		my $q = sub { my $s = shift; $s =~ s/'/''/g; "'$s'" };
		my ($ret, $out, $err) = $node->psql('postgres',
			'SELECT sms_status_callback(' . $q->("http://127.0.0.1:$port$target") . ', '
			  . $q->($body) . ', ' . $q->($h{'x-twilio-signature'} // '') . ')');
		my $status = $ret == 0 ? '200 OK' : '500 Internal Server Error';
		print STDERR "receiver: $status $err\n" if $ret != 0;
		print $c "HTTP/1.1 $status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		close $c;
	}
	exit 0;
}
END { kill 'TERM', $receiver if $receiver; }

# each magic number and the outcome its message ends with
my %ends = (
	'+15558675310' => [ 'delivered', undef ],
	'+15005553003' => [ 'undelivered', 30003 ],
	'+15005553005' => [ 'undelivered', 30005 ],
	'+15005553006' => [ 'undelivered', 30006 ],
	'+15005553007' => [ 'undelivered', 30007 ],
	'+15005553001' => [ 'failed', 30001 ],);
for my $to (sort keys %ends)
{
	$node->safe_psql('postgres', "SELECT sms_send('$to', '+15017122661', 'to $to')");
}

wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox
	   WHERE state = 'sent' AND status IN ('delivered', 'undelivered', 'failed')},
	scalar(keys %ends), 'every message reached its final status by callbacks');

for my $to (sort keys %ends)
{
	my ($status, $code) = @{ $ends{$to} };
	my $row = $node->safe_psql('postgres',
		"SELECT status, coalesce(error_code::text, ''), status_changed_at IS NOT NULL,
				(delivered_at IS NOT NULL)::text
		   FROM sms_outbox WHERE to_number = '$to'");
	is($row,
		join('|', $status, $code // '', 't', $status eq 'delivered' ? 'true' : 'false'),
		"$to ends $status" . ($code ? " ($code)" : ''));
}

# the emulator's log: every callback was answered, none refused by us
my $log = $emu->get_json('/_emulator/callbacks');
my @attempts = @{ ref $log eq 'HASH' ? $log->{callbacks} : $log };
my @ok = grep { ($_->{result} // '') eq 'answered' && $_->{response_status} == 200 } @attempts;
note sprintf('callbacks: %d attempts, %d answered 200', scalar @attempts, scalar @ok);
ok(@ok >= 2 * keys %ends, 'sms_status_callback() took at least two callbacks per message');

done_testing();
