
# Conformance with Twilio's official OpenAPI description.
#
# Prism (npm @stoplight/prism-cli) serves twilio_api_v2010.json, the spec
# of twilio-oai as shipped in the npm package @twilio-alpha/mcp; both are
# pinned in test/prism/package-lock.json (make prism-deps installs them).
# The worker sends every shape of message to it, and every request must
# pass Prism's request validation: each one answered 201, none 422, and the
# SID written back matches the spec's pattern for a Message.
#
# What Prism checks on Message create: Basic authentication present, the
# AccountSid path parameter (^AC[0-9a-fA-F]{32}$), the content type
# (application/x-www-form-urlencoded), the Accept header against the
# response's media type, To present, and MessagingServiceSid against
# ^MG[0-9a-fA-F]{32}$.  It does not check To or From further: their format
# "phone-number" is not a JSON Schema format, so it is ignored; and the spec
# asks nothing of Body but a string.  So the bytes of a body are checked
# against the emulator (001_send.pl); here, that each shape is accepted.
#
# Request violations always make Prism answer 422 in mock mode; --errors
# only turns *response* violations (the spec's own example against the
# spec's own schema) into 500s, so it is not used: such a violation says
# nothing about our requests, and is reported here as a note.
#
# Media is not sent here.  Prism reads a repeated form key as one value and
# then rejects MediaUrl ("must be array"), even with a single URL, while
# Twilio and its SDKs send MediaUrl repeated, once per URL; so media is
# checked against the emulator instead (001_send.pl, "MediaUrl repeated, in
# order").
#
# Prism's per-request outcome is read from its log (no JSON log is offered
# by the CLI): per request one "Request received" line from [HTTP SERVER],
# then either 'Responding with "NNN"' or "Request terminated with error:
# ...#TYPE" (e.g. UNPROCESSABLE_ENTITY, which is a 422).  The log is kept as
# tmp_check/log/090_prism_prism-cli.log.
#
# SMS_PRISM_DIR names the directory holding node_modules (default
# test/prism); the test is skipped when Prism is not installed there.

use strict;
use warnings;

use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use SmsTest;

my $prism_dir = File::Spec->rel2abs($ENV{SMS_PRISM_DIR} // 'test/prism');
my $prism = "$prism_dir/node_modules/.bin/prism";
my $spec_file = "$prism_dir/node_modules/\@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json";

plan skip_all => "Prism is not installed at $prism (run make prism-deps, or set SMS_PRISM_DIR)"
  unless -x $prism;
die "Twilio's OpenAPI description not found at $spec_file (run make prism-deps)"
  unless -f $spec_file;

# --- what the spec says a created Message looks like
my $spec = JSON::PP->new->utf8->decode(slurp_file($spec_file));
my $create = $spec->{paths}{'/2010-04-01/Accounts/{AccountSid}/Messages.json'}{post}
  or die "the spec has no Message create operation";
my $created = $create->{responses}{201}{content}{'application/json'}
  or die "the spec's Message create has no 201 application/json response";
my $message_schema = resolve($created->{schema});
my $sid_pattern = $message_schema->{properties}{sid}{pattern}
  or die "the spec gives no pattern for a Message sid";
my %statuses = map { $_ => 1 } @{ resolve($message_schema->{properties}{status})->{enum} };
note "the spec's Message sid pattern: $sid_pattern";

# --- Prism, on a free port of 127.0.0.1, logging to a file
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $prism_log = "$PostgreSQL::Test::Utils::log_path/090_prism_prism-cli.log";
my $prism_h;
{
	local $ENV{FORCE_COLOR} = '0';    # plain text log
	$prism_h = IPC::Run::start(
		[ $prism, 'mock', '--host', '127.0.0.1', '--port', $port, $spec_file ],
		'<', '/dev/null', '>', $prism_log, '2>&1');
}

# Do not leave Prism running if the test dies half-way.
END
{
	local $?;
	$prism_h->kill_kill(grace => 5) if $prism_h && $prism_h->pumpable;
}

# The cluster starts while Prism reads the spec; nothing is sent before
# Prism listens, since nothing is queued before.
my $node = sms_node('sms', undef,
	conf => "sms.api_url = 'http://127.0.0.1:$port'\n");

my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
until (slurp_file($prism_log) =~ /Prism is listening on http:\/\/127\.0\.0\.1:$port\b/)
{
	die "Prism exited before listening:\n" . slurp_file($prism_log)
	  unless $prism_h->pumpable;
	die "Prism did not listen within $PostgreSQL::Test::Utils::timeout_default s:\n"
	  . slurp_file($prism_log)
	  if time() > $deadline;
	usleep(100_000);
}

# --- every shape of message
my @shapes = (
	[ 'E.164 From', q{'+15558675310', '+15017122661', 'Your code is 4821'} ],
	[ 'short code From', q{'+15558675311', '12345', 'From a short code'} ],
	[ 'alphanumeric sender', q{'+447700900123', 'ACME', 'Hello from ACME'} ],
	[ 'Messaging Service', q{'+15558675312', 'MG9752274e9e519418a7406176694466fa', 'Sent through a Messaging Service'} ],
	[ 'UCS-2 body', q{'+15558675313', '+15017122661', E'\u041F\u0440\u0438\u0432\u0435\u0442 \u4E16\u754C \U0001F600 caf\u00E9 \u20AC \u0645\u0631\u062D\u0628\u0627'} ],
	[ 'reserved characters', q{'+15558675314', '+15017122661', 'a&b=c+d%20e%25f #g ?h/i;j'} ],
	[ 'CR/LF newlines', q{'+15558675315', '+15017122661', E'line one\nline two\r\nline three\rline four\n'} ],
);

my %id_of;
$id_of{ $_->[0] } = $node->safe_psql('postgres', "SELECT sms_send($_->[1])") for @shapes;
my $n = scalar @shapes;

wait_for_rows($node,
	q{SELECT count(*) FROM sms_outbox WHERE state NOT IN ('pending', 'sending')},
	$n, 'every message settled');

for my $shape (@shapes)
{
	my $name = $shape->[0];
	my ($state, $sid, $status, $error) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT state, sid, status, coalesce(error_code || ': ', '') || coalesce(error_message, '')
		   FROM sms_outbox WHERE id = $id_of{$name}"), 4;
	$sid //= '';
	$status //= '';
	is($state, 'sent', "$name: sent" . ($error ne '' ? " (got: $error)" : ''));
	like($sid, qr/$sid_pattern/, "$name: the SID written back matches the spec's pattern");
	ok($statuses{$status}, "$name: the status written back ('$status') is one of the spec's");
}

# --- what Prism answered: one outcome per request
my $log;
$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (1)
{
	$log = parse_prism_log(slurp_file($prism_log));
	last if @{ $log->{received} } >= $n
	  && @{ $log->{outcomes} } >= @{ $log->{received} };
	last if time() > $deadline;
	usleep(100_000);
}
$prism_h->signal('TERM');
$prism_h->finish;
$log = parse_prism_log(slurp_file($prism_log));

my @received = @{ $log->{received} };
my @outcomes = @{ $log->{outcomes} };
my $create_request = "POST /2010-04-01/Accounts/$SmsTest::ACCOUNT_SID/Messages.json";
is(scalar(grep { $_ eq $create_request } @received), $n,
	"Prism received one Message create per message ($n)");
is_deeply([ grep { $_ ne $create_request } @received ], [], 'Prism received no other request');
is(scalar @outcomes, scalar @received, 'Prism logged an outcome for every request');
is(scalar(grep { $_ eq '201' } @outcomes), scalar @received, 'Prism answered every request 201')
  or diag "Prism's answers: @outcomes";
is(scalar(grep { $_ eq '422' } @outcomes), 0, 'Prism answered no request 422');
ok(!@{ $log->{request_violations} }, 'no request violated the spec')
  or diag join("\n", "Prism's validator:", @{ $log->{request_violations} });
note "response violation (the spec's example against its schema, not ours): $_"
  for @{ $log->{response_violations} };

$node->stop;
done_testing();

# Follow a local $ref ("#/components/schemas/...") of the spec.
sub resolve
{
	my ($schema) = @_;
	while (my $ref = $schema->{'$ref'})
	{
		die "unsupported \$ref $ref" unless $ref =~ m{^#/};
		$schema = $spec;
		$schema = $schema->{$_} // die "dangling \$ref $ref" for split m{/}, substr($ref, 2);
	}
	return $schema;
}

# Prism's CLI log, line by line; a line is
#   [time] > [HTTP SERVER] post /path <badge> info    Request received
#   [time] >     [NEGOTIATOR] <badge> info    > Responding with "201"
#   [time] > [HTTP SERVER] post /path <badge> error   Request terminated with error: https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY: Invalid request
#   [time] >     [VALIDATOR] <badge> error   Request body must have required property 'To'
sub parse_prism_log
{
	my ($text) = @_;
	my %problem_status = (
		UNPROCESSABLE_ENTITY => 422, UNAUTHORIZED => 401, NOT_FOUND => 404,
		NOT_ACCEPTABLE => 406, INVALID_CONTENT_TYPE => 415, VIOLATIONS => 500,
		NO_RESPONSE_DEFINED => 500, SCHEMA_TOO_COMPLEX => 500);
	my %r = (received => [], outcomes => [], request_violations => [], response_violations => []);

	for my $line (split /\n/, $text)
	{
		$line =~ s/\e\[[0-9;]*m//g;
		next unless $line =~ /\[([A-Z ]+)\]\s+(.*)$/;
		my ($who, $rest) = ($1, $2);
		my ($request, $level, $msg);
		if ($who eq 'HTTP SERVER')
		{
			next unless $rest =~ /^(\w+) (\S+) \S+\s+(\w+)\s+(.*)$/;
			($request, $level, $msg) = (uc($1) . " $2", $3, $4);
		}
		else
		{
			next unless $rest =~ /^\S+\s+(\w+)\s+(.*)$/;
			($level, $msg) = ($1, $2);
		}

		if ($msg eq 'Request received')
		{
			push @{ $r{received} }, $request;
		}
		elsif ($msg =~ /Responding with "(\d+)"/)
		{
			push @{ $r{outcomes} }, $1;
		}
		elsif ($msg =~ /^Request terminated with error: \S*#(\w+)/)
		{
			push @{ $r{outcomes} }, $problem_status{$1} // "error $1";
		}
		elsif ($msg eq 'Request did not pass the validation rules')
		{
			next;    # the violations follow, one a line
		}
		elsif ($who eq 'VALIDATOR' && $level =~ /^(warning|error)$/)
		{
			if ($msg =~ /^Violation: response/)
			{
				push @{ $r{response_violations} }, $msg;
			}
			else
			{
				push @{ $r{request_violations} }, $msg;
			}
		}
	}
	return \%r;
}
