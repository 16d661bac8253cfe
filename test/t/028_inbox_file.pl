
# The emulator's inbox kept in a file (--inbox-file): a restart, clean or
# a crash, keeps every message with its sid, body, media and what became
# of it, and the worker's status poll after the restart finds its message.
# A torn last line is skipped; a file that is not an inbox is refused and
# left as it was; a reset empties the file too.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use SmsTest;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $file = "$dir/inbox.jsonl";
my $emu = start_emulator(args => [ '--inbox-file', $file, '--progress-ms', '-1' ]);
my $port = $emu->{port};
my $node = sms_node('inbox_file', $emu, conf => "sms.status_poll_interval = '1s'\n");
my $from = '+15017122661';

# two messages from SQL, one with media; the emulator's clock is frozen,
# so both stay queued until after the restart
$node->safe_psql('postgres', qq{
	SELECT sms_send('+15558675310', '$from', 'Kod 🔐 4821
second line');
	SELECT sms_send('+15558675311', '$from', 'with media', media_urls => ARRAY['https://example.com/a.png']);
});
wait_for_rows($node, "SELECT count(*) FROM sms_outbox WHERE sid IS NOT NULL", '2',
	'both messages are created at the emulator');
my @before = sort { $a->{sid} cmp $b->{sid} } @{ $emu->messages };

my $view = sub {
	my ($list) = @_;
	return [ map { join '|', $_->{sid}, $_->{to}, $_->{body}, "@{ $_->{media_urls} }", $_->{num_segments} }
		  sort { $a->{sid} cmp $b->{sid} } @$list ];
};

# a clean restart
$emu->stop;
$emu = start_emulator(port => $port, args => [ '--inbox-file', $file ]);
is_deeply($view->($emu->messages), $view->(\@before),
	'after a restart the inbox holds the same messages: sids, bodies, media, segments');

# the worker's poll finds its messages under their sids, and they move on
# (the new run's clock runs)
wait_for_rows($node, "SELECT string_agg(status, ',' ORDER BY id) FROM sms_outbox", 'delivered,delivered',
	'the worker\'s status polls find both messages after the restart: delivered');

# a crash: the message written before it is kept
$node->safe_psql('postgres', "SELECT sms_send('+15558675312', '$from', 'before the crash')");
wait_for_rows($node, "SELECT count(*) FROM sms_outbox WHERE sid IS NOT NULL", '3',
	'a third message is created');
my $third = $node->safe_psql('postgres', "SELECT sid FROM sms_outbox WHERE body = 'before the crash'");
$emu->stop('KILL');

# and a torn line, as a crash in the middle of a write would leave
open my $fh, '>>', $file or die "$file: $!";
print $fh '{"op":"message","serial":4,"to":"+1555';
close $fh;
$emu = start_emulator(port => $port, args => [ '--inbox-file', $file ]);
my %sids = map { $_->{sid} => $_ } @{ $emu->messages };
ok($sids{$third}, 'a message created just before the emulator was killed is kept');
is(scalar keys %sids, 3, 'the torn line is skipped, nothing else');

# the next message is written on a line of its own, and read back
$node->safe_psql('postgres', "SELECT sms_send('+15558675313', '$from', 'after the crash')");
wait_for_rows($node, "SELECT count(*) FROM sms_outbox WHERE sid IS NOT NULL", '4',
	'a fourth message is created');
$emu->stop;
$emu = start_emulator(port => $port, args => [ '--inbox-file', $file ]);
is(scalar @{ $emu->messages }, 4, 'and the message after the torn line is read back');

# a reset empties the kept inbox too
$emu->reset;
$emu->stop;
$emu = start_emulator(port => $port, args => [ '--inbox-file', $file ]);
is(scalar @{ $emu->messages }, 0, 'a reset empties the file: nothing after a restart');
$emu->stop;

# a file that is not an inbox is refused and left alone
my $other = "$dir/notes.txt";
PostgreSQL::Test::Utils::append_to_file($other, "my notes\n");
my ($out, $err) = ('', '');
my $h = IPC::Run::start([ $ENV{SMS_EMULATOR} // 'test/emulator/twilio-emulator',
	'--port', PostgreSQL::Test::Cluster::get_free_port(), '--inbox-file', $other ],
	\undef, \$out, \$err);
$h->finish;
isnt($h->result(0), 0, 'the emulator refuses to start on a file that is not an inbox');
like($err, qr/is not an inbox file/, 'and says why');
is(slurp_file($other), "my notes\n", 'the file is left as it was');

$node->stop;
done_testing();
