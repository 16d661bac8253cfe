# The emulator's inbox page in a real browser (Debian's Chromium, headless,
# through chromedriver): a message sent from SQL appears on the open page
# without a reload, and bodies that are HTML or script are shown as text
# and run nothing.  A screenshot goes to the test's log directory.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64;
use IO::Socket::INET;
use Test::More;
use SmsTest;
use SmsBrowser;

my $browser = SmsBrowser->start
  or plan skip_all => "no browser: $@";
my $emu = start_emulator();
my $node = sms_node('inbox', $emu, conf => "sms.status_poll_interval = '1s'\n");
my $from = '+15017122661';

$browser->go($emu->url . '/');
wait_until(sub { ($browser->js(q{return document.getElementById('live').textContent}) // '') eq 'live' },
	'the page is open and its event stream connected');
# a mark that a reload would wipe out
$browser->js(q{window.inboxMark = 42; return 1});

# the bubbles of the thread shown, as the page renders them (text)
my $bubbles = sub {
	return $browser->js(q{return [...document.querySelectorAll('#thread .bubble')].map(b => b.textContent)}) // [];
};

# show a number's thread, once the page lists the number
my $open_thread = sub {
	my ($number) = @_;
	wait_until(sub { $browser->js(q{return !!document.querySelector(`#conversations button[data-number="${arguments[0]}"]`)}, $number) },
		"the page lists $number");
	# (the page may redraw the button between finding and clicking it)
	wait_until(
		sub {
			eval { $browser->click(qq{#conversations button[data-number="$number"]}) };
			$browser->js(q{const b = document.querySelector(`#conversations button[data-number="${arguments[0]}"]`);
				return !!b && b.classList.contains('active')}, $number);
		},
		"the thread of $number is shown");
};
$node->safe_psql('postgres', "SELECT sms_send('+15558675310', '$from', 'Your code is 4821')");
wait_until(sub { grep { $_ eq 'Your code is 4821' } @{ $bubbles->() } },
	'a message sent from SQL appears on the open page');
is($browser->js(q{return window.inboxMark}), 42, 'without a reload');
wait_until(
	sub {
		($browser->js(q{
			const m = [...document.querySelectorAll('#thread .message')]
				.find(d => d.querySelector('.bubble').textContent === 'Your code is 4821');
			return m ? m.querySelector('.status').textContent : null}) // '') eq 'delivered';
	},
	'its status moves on to delivered on the page');
like($browser->js(q{return document.querySelector('#thread .history').textContent}),
	qr/queued .*sent .*delivered/, 'with the time of each change');

# hostile bodies, to the same number: shown as text, nothing runs
my @hostile = (
	q{<script>document.title = 'pwned'</script>},
	q{<img src=x onerror="document.title = 'pwned'">},);
for my $body (@hostile)
{
	(my $q = $body) =~ s/'/''/g;
	$node->safe_psql('postgres', "SELECT sms_send('+15558675310', '$from', '$q')");
}
wait_until(sub { my %b = map { $_ => 1 } @{ $bubbles->() }; !grep { !$b{$_} } @hostile },
	'HTML bodies appear, as the text they are');
is($browser->js(q{return document.title}), 'SMS inbox', 'no script of a body ran');
is($browser->js(q{return document.querySelectorAll('#thread img, #thread script').length}),
	0, 'no element was made of a body');

# the page's control: this number's next message ends undelivered 30005,
# and the outbox's row learns it (by polling)
my $to = '+15558675312';
$browser->type('#outcome-to', $to);
$browser->choose('#outcome', 'undelivered:30005');
$browser->click('#outcome-add');
wait_until(sub { ($browser->js(q{return document.getElementById('control-result').textContent}) // '') eq 'done' },
	'the page set the outcome');
$node->safe_psql('postgres', "SELECT sms_send('$to', '$from', 'this one bounces')");
wait_for_rows($node,
	"SELECT status || ' ' || coalesce(error_code::text, '') FROM sms_outbox WHERE to_number = '$to'",
	'undelivered 30005', 'the row in the outbox ends with the error code chosen on the page');
$open_thread->($to);
wait_until(
	sub {
		($browser->js(q{
			const m = [...document.querySelectorAll('#thread .message')]
				.find(d => d.querySelector('.bubble').textContent === 'this one bounces');
			return m ? m.querySelector('.meta:last-child').textContent : null}) // '') =~ /undelivered \(30005\)/;
	},
	'and the page shows it undelivered with its code');

# a message as an application might send it straight to the API: a body
# of emoji, right-to-left text and line breaks, and media, one of them a
# javascript: URL
my $api = HTTP::Tiny->new(default_headers => {
	Authorization => 'Basic ' . MIME::Base64::encode_base64("$SmsTest::ACCOUNT_SID:$SmsTest::AUTH_TOKEN", '') });
my $create = sub {
	my (@form) = @_;			# (MediaUrl repeats: a list, not a hash)
	my $r = $api->post_form($emu->url . "/2010-04-01/Accounts/$SmsTest::ACCOUNT_SID/Messages.json",
		[ From => $from, @form ]);
	die "create: $r->{status} $r->{content}" unless $r->{status} == 201;
	return JSON::PP::decode_json($r->{content})->{sid};
};
my $rich_to = '+15558675320';
my $rich = "Kod \x{1F510}: 4821\n\x{5E9}\x{5DC}\x{5D5}\x{5DD} \x{645}\x{631}\x{62D}\x{628}\x{627}\nline three";
my $rich_sid = $create->(To => $rich_to, Body => $rich,
	MediaUrl => 'https://example.com/cat.png', MediaUrl => 'javascript:alert(1)');
$open_thread->($rich_to);
my $shown = sub {
	return $browser->js(q{
		const m = document.querySelector(`#thread .message[data-key="${arguments[0]}"]`);
		return m && { body: m.querySelector('.bubble').textContent, meta: m.innerText,
			links: [...m.querySelectorAll('a')].map(a => a.getAttribute('href')),
			status: m.querySelector('.status').textContent }}, $_[0]);
};
wait_until(sub { my $m = $shown->($rich_sid); $m && $m->{status} eq 'delivered' },
	'a message sent straight to the API appears on its number\'s thread, delivered');
my $m = $shown->($rich_sid);
is($m->{body}, $rich, 'its body exactly as sent: emoji, right-to-left text, line breaks');
like($m->{meta}, qr/1 segment UCS-2/, 'its segments and their encoding');
is_deeply($m->{links}, ['https://example.com/cat.png'], 'a link for the https media URL only');
like($m->{meta}, qr/javascript:alert\(1\)/, 'the javascript: URL shown as text');
is($browser->js(q{return document.title}), 'SMS inbox', 'and nothing ran');

# a number with more messages than the page lays out: the newest fifty
my $busy = '+15558675321';
$create->(To => $busy, Body => "busy $_") for 1 .. 55;
$open_thread->($busy);
wait_until(sub { (($bubbles->())->[-1] // '') eq 'busy 55' },
	'a busy number\'s thread ends with its newest message');
my @busy = @{ $bubbles->() };
is_deeply(\@busy, [ map { "busy $_" } 6 .. 55 ], 'the newest fifty, oldest first');
is($browser->js(q{return document.getElementById('thread-more').textContent}),
	'5 earlier messages not shown', 'and how many more there are');

# search: by text
$browser->type('#search', 'bounces');
wait_until(sub {
		my $n = $browser->js(q{return [...document.querySelectorAll('#conversations button')].map(b => b.dataset.number)});
		$n && "@$n" eq $to },
	'a search narrows the conversations to the number whose text matches');
$browser->js(q{const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return 1});
wait_until(sub { ($browser->js(q{return document.querySelectorAll('#conversations button').length}) // 0) == 4 },
	'an empty search shows every number again');

# a fault turned on from the page: the worker's retries show there (a
# refused create leaves no message), and the message arrives once it is off
my $traffic = sub { $browser->js(q{return document.getElementById('traffic').textContent}) // '' };
$browser->choose('#fault', '429_retry_after');
$browser->click('#fault-add');
wait_until(sub { $traffic->() =~ /faults: 429_retry_after, applied 0/ }, 'the page shows the fault on');
$node->safe_psql('postgres', "SELECT sms_send('+15558675330', '$from', 'after two 429s')");
wait_until(sub { $traffic->() =~ /429 \S+?(\d+)/ && $1 >= 2 },
	'the worker\'s retries show on the page: two 429s or more');
$browser->click('#faults-clear');
wait_until(sub { $traffic->() =~ /faults: none/ }, 'the page turned the fault off');
note 'the page says: ', $traffic->();
wait_for_rows($node, "SELECT state FROM sms_outbox WHERE body = 'after two 429s'", 'sent',
	'then the worker sends the message');
$open_thread->('+15558675330');
wait_until(sub { grep { $_ eq 'after two 429s' } @{ $bubbles->() } }, 'and it appears on the page');
is($emu->created_per_body->{'after two 429s'}, 1, 'created once');

# (before the last test below clears the inbox)
my $shot = "$PostgreSQL::Test::Utils::log_path/inbox.png";
$browser->screenshot($shot);
ok(-s $shot, "screenshot saved: $shot");

# another site cannot drive the emulator through the developer's browser:
# a form posted from elsewhere, or a name of its own rebound to 127.0.0.1
my $http = HTTP::Tiny->new;
my $count = sub { scalar @{ $emu->messages } };
my $before = $count->();
my $r = $http->post($emu->url . '/_emulator/reset',
	{ headers => { Origin => 'https://attacker.example' } });
is($r->{status}, 403, 'a reset posted from another origin is refused');
# (HTTP::Tiny sets Host itself: a request written by hand)
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $emu->{port})
  or die "connect: $!";
print $sock "GET /_emulator/messages HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n";
my ($status) = (scalar <$sock>) =~ m{^HTTP/1\.\d (\d+)};
close $sock;
is($status, 403, 'the inbox read under another host name is refused');
is($count->(), $before, 'and the inbox is as it was');
$r = $http->post($emu->url . '/_emulator/reset', { headers => { Origin => $emu->url } });
is($r->{status}, 200, 'the page\'s own origin may');

# the page's own button clears the inbox, and the page empties
$create->(To => $busy, Body => 'one more');
wait_until(sub { (($bubbles->())->[-1] // '') eq 'one more' }, 'a message after the reset appears');
$browser->click('#clear');
wait_until(sub { !@{ $bubbles->() } && !@{ $emu->messages } },
	'"Clear inbox" empties the emulator and the page');


done_testing();
