
# The emulator against Twilio's official Node.js SDK (npm twilio, pinned in
# test/sdk/package-lock.json; make npm-deps installs it).  test/sdk/check.js
# makes the calls an application makes (create with every kind of sender
# and media, Twilio's errors, fetch, cancel, redact, delete, list and its
# paging and filters, media, scheduling, an API key, 429 and the SDK's
# retry, status progression and signed callbacks) and checks each against
# Twilio's documented behaviour; each of its checks is a test here, named
# by the call.  Then the emulator's own logs must show what the SDK sent:
# one request per SDK call, plus one per 429 the SDK retried, every one
# with the SDK's User-Agent; each message created once, its body and media
# as given.
#
# SMS_SDK_DIR names the directory holding node_modules (default test/sdk);
# the test is skipped when node or the SDK is not installed there.

use strict;
use warnings;

use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

my $sdk_dir = File::Spec->rel2abs($ENV{SMS_SDK_DIR} // 'test/sdk');
my $sdk_package = "$sdk_dir/node_modules/twilio/package.json";
my ($node_bin) = grep { -x } map { "$_/node" } split /:/, $ENV{PATH} // '';

plan skip_all => 'node is not on the PATH (Debian: apt-get install nodejs)'
  unless $node_bin;
plan skip_all => "Twilio's Node.js SDK is not installed at $sdk_dir/node_modules (run make npm-deps, or set SMS_SDK_DIR)"
  unless -f $sdk_package;

my $json = JSON::PP->new->utf8;
my $sdk_version = $json->decode(slurp_file($sdk_package))->{version};
note "twilio-node $sdk_version from $sdk_dir";

my $key_sid = 'SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
my $key_secret = 'emulator-key-secret';
my $emu = start_emulator(args => [ '--api-key-sid', $key_sid, '--api-key-secret', $key_secret ]);

# --- the SDK's checks, one test each
my ($out, $err) = ('', '');
{
	local $ENV{SMS_SDK_DIR} = $sdk_dir;
	IPC::Run::run(
		[
			$node_bin, 'test/sdk/check.js', $emu->url,
			'--account-sid', $SmsTest::ACCOUNT_SID, '--auth-token', $SmsTest::AUTH_TOKEN,
			'--api-key-sid', $key_sid, '--api-key-secret', $key_secret
		],
		'<', '/dev/null', '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}
note $err if $err ne '';

my ($summary, $checks) = (undef, 0);
for my $line (split /\n/, $out)
{
	my $r = eval { $json->decode($line) };
	if (!$r)
	{
		diag "check.js printed: $line";
		next;
	}
	if ($r->{done})
	{
		$summary = $r;
		next;
	}
	$checks++;
	ok($r->{ok}, "SDK: $r->{name}") or diag $r->{detail};
}
ok($summary, 'check.js ran to its end') or BAIL_OUT("check.js did not finish: $err");
is($checks, $summary->{checks}, 'every check reported');
is($summary->{passed}, $summary->{checks}, "$summary->{passed} of $summary->{checks} checks passed");
cmp_ok($summary->{calls}, '>=', 51, "the SDK made $summary->{calls} calls (the issue's 51 at least)");
my $facts = $summary->{facts};

# --- what arrived at the emulator
my $requests = $emu->requests;
my $retried = 0;
$retried += @{ $facts->{retry}{$_} } - 1 for keys %{ $facts->{retry} };
is(scalar @$requests, $summary->{calls} + $retried,
	"the emulator logged one request per SDK call, and one per retry ($retried)");
is(scalar(grep { ($_->{user_agent} // '') !~ m{^twilio-node/\Q$sdk_version\E } } @$requests), 0,
	"every request has the SDK's User-Agent (twilio-node/$sdk_version)");

my @posts = grep { $_->{method} eq 'POST' && $_->{path} =~ m{/Messages\.json$} } @$requests;
is(scalar @posts, $facts->{create_calls} + $retried, 'creates: the calls the SDK made, and its retries');
is(scalar(grep { ($_->{content_type} // '') !~ m{^application/x-www-form-urlencoded} } @posts), 0,
	'every create is form-encoded');
is(scalar(grep { $_->{status} == 201 } @posts), $facts->{created},
	"creates answered 201: the $facts->{created} messages the script made");

for my $to (sort keys %{ $facts->{retry} })
{
	my @got = map { $_->{status} } grep { ($_->{form}{To} // '') eq $to } @posts;
	is_deeply(\@got, $facts->{retry}{$to}, "429 to $to: the emulator answered @{ $facts->{retry}{$to} }");
}

my %message = map { $_->{sid} => $_ } @{ $emu->messages };
is(scalar keys %message, $facts->{created}, 'the emulator holds each message created once');
my @wrong_body = grep { !$message{$_} || $message{$_}{body} ne $facts->{bodies}{$_} }
  sort keys %{ $facts->{bodies} };
is_deeply(\@wrong_body, [], 'every body stored exactly as the SDK sent it (redacted: empty)');
for my $sid (sort keys %{ $facts->{media} })
{
	is_deeply($message{$sid}{media_urls}, $facts->{media}{$sid},
		"MediaUrl sent repeated, in order (@{[ scalar @{ $facts->{media}{$sid} } ]})");
}
is($message{ $facts->{scheduled} }{status}, 'canceled', 'the scheduled message is canceled at the emulator');

$emu->stop;
done_testing();
