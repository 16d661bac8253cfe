
# No value of a secret setting (sms.auth_token, sms.api_key_secret) reaches
# the server log, however a statement spells the setting's name: case,
# quoted identifiers, comments, concatenated or escaped strings, an
# unterminated string, ALTER SYSTEM and the reload that follows, and the
# extended protocol, where the name and the value may travel only as bind
# parameters.  Each statement carries a value of its own, and the whole log
# is searched for every one of them, first under PostgreSQL's default
# logging and then with log_statement = 'all' and
# log_min_duration_statement = 0.  The log must also show that these
# events were logged, redacted: the hidden-statement marker, the errors,
# the reload; and an application's own column named auth_token is still
# logged in full.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SmsTest;

# PostgreSQL::Test::Cluster turns log_statement on; start from the default
my $node = sms_node('secret_log', undef, conf => "log_statement = 'none'\n");
my $host = $node->host;
my $port = $node->port;
my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres',
	'CREATE TABLE app_sessions (id int, auth_token text)');

my %spelling;    # value => how the statement that carried it spelled it
my $n = 0;

sub new_secret
{
	my ($what) = @_;
	$n++;
	my $value = "leak-17-$n";
	$spelling{$value} = $what;
	return $value;
}

# A statement through psql (the simple protocol); errors are expected.
sub via_psql
{
	my ($what, $sql) = @_;
	my $v = new_secret($what);
	$sql =~ s/VALUE/$v/g;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 0);
	note "$what: $err" if $err ne '';
	return;
}

# A script through pgbench -M extended or -M prepared (the extended
# protocol: parse, bind, execute); -D variables travel as bind parameters.
my $script_no = 0;

sub via_pgbench
{
	my ($what, $mode, $script, %vars) = @_;
	my $v = new_secret("$what (pgbench -M $mode)");
	$script =~ s/VALUE/$v/g;
	my $file = "$tmp/script" . ++$script_no . '.sql';
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh $script;
	close($fh);
	my @defs = map { ('-D', "$_=" . ($vars{$_} =~ s/VALUE/$v/gr)) } sort keys %vars;
	my ($out, $err) = run_command(
		[
			'pgbench', '-n', '-t', '1', '-M', $mode, '-h', $host, '-p', $port,
			@defs, '-f', $file, 'postgres'
		]);
	note "$what (pgbench -M $mode): $err" if $err =~ /ERROR/;
	return;
}

# Wait until everything logged so far is in the file: the marker is logged
# after the statements above, the postmaster's reload messages are waited
# for by the steps that cause them.
sub wait_for_marker
{
	my ($marker) = @_;
	$node->safe_psql('postgres', "DO \$\$BEGIN RAISE LOG '%', '$marker'; END\$\$");
	$node->wait_for_log(qr/LOG:  \Q$marker\E$/m);
	return;
}

# ALTER SYSTEM SET, then RESET, each reloaded: the postmaster logs the new
# value of a reloaded setting.
sub alter_system
{
	my ($what, $name) = @_;
	my $v = new_secret($what);
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $name = '$v'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	$node->wait_for_log(qr/parameter "\Q$name\E" changed/, $offset);
	$offset = -s $node->logfile;
	$node->safe_psql('postgres', "ALTER SYSTEM RESET $name");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	$node->wait_for_log(qr/parameter "\Q$name\E" (changed|removed from)/, $offset);
	return;
}

# Every spelling, each with a value of its own.
sub all_spellings
{
	my ($phase) = @_;

	# sms.auth_token
	via_psql("$phase plain SET", q{SET sms.auth_token = 'VALUE'});
	via_psql("$phase upper case SET", q{SET SMS.AUTH_TOKEN = 'VALUE'});
	via_psql("$phase mixed-case set_config",
		q{SELECT set_config('SMS.Auth_Token', 'VALUE', false)});
	via_psql("$phase quoted identifiers", q{SET "sms"."auth_token" = 'VALUE'});
	via_psql("$phase quoted upper-case identifiers",
		q{SET "SMS"."AUTH_TOKEN" = 'VALUE'});
	via_psql("$phase block comment between the words",
		q{SET sms./* x */auth_token = 'VALUE'});
	via_psql("$phase line comment between the words",
		qq{SET sms -- x\n.auth_token = 'VALUE'});
	via_psql("$phase nested comment and quoted identifiers",
		q{SET "SMS" . /* a /* b */ c */ "AUTH_TOKEN" = 'VALUE'});
	via_psql("$phase concatenated name",
		q{SELECT set_config('sms.' || 'auth_token', 'VALUE', false)});
	via_psql("$phase E'' hex escape",
		q{SELECT set_config(E'sms.\x61uth_token', 'VALUE', false)});
	via_psql("$phase U&'' escape",
		q{SELECT set_config(U&'sms.auth\005Ftoken', 'VALUE', false)});
	via_psql("$phase U&\"\" identifier",
		q{SET sms.U&"auth\005ftoken" = 'VALUE'});
	via_psql("$phase UESCAPE",
		q{SELECT set_config(U&'sms.auth!005Ftoken' UESCAPE '!', 'VALUE', false)});
	via_psql("$phase dollar quotes",
		q{SELECT set_config($n$sms.auth_token$n$, 'VALUE', false)});
	via_psql("$phase unterminated string", q{SET sms.auth_token = 'VALUE});
	via_psql("$phase prepared statement, value in EXECUTE",
		q{PREPARE p(text) AS SELECT set_config('sms.auth_token', $1, false); EXECUTE p('VALUE')});
	alter_system("$phase ALTER SYSTEM", 'sms.auth_token');

	# sms.api_key_secret
	via_psql("$phase api_key_secret plain SET", q{SET sms.api_key_secret = 'VALUE'});
	via_psql("$phase api_key_secret upper case",
		q{SELECT set_config('SMS.API_KEY_SECRET', 'VALUE', false)});
	via_psql("$phase api_key_secret quoted identifiers",
		q{SET "Sms"."Api_Key_Secret" = 'VALUE'});
	via_psql("$phase api_key_secret E'' octal escape",
		q{SELECT set_config(E'sms.\141pi_key_secret', 'VALUE', false)});
	via_psql("$phase api_key_secret unterminated string",
		q{SET sms.api_key_secret = 'VALUE});
	alter_system("$phase api_key_secret ALTER SYSTEM", 'sms.api_key_secret');

	# the extended protocol
	for my $mode ('extended', 'prepared')
	{
		via_pgbench("$phase set_config", $mode,
			"SELECT set_config('sms.auth_token', 'VALUE', false);\n");
		via_pgbench("$phase ALTER SYSTEM", $mode,
			"ALTER SYSTEM SET sms.auth_token = 'VALUE';\nALTER SYSTEM RESET sms.auth_token;\n");
		via_pgbench("$phase value as a bind parameter", $mode,
			"SELECT set_config('SMS.AUTH_TOKEN', :value, false);\n",
			value => 'VALUE');
		via_pgbench("$phase name and value as bind parameters", $mode,
			"SELECT set_config(:name, :value, false);\n",
			name => 'sms.auth_token', value => 'VALUE');
		via_pgbench("$phase api_key_secret, name and value as bind parameters", $mode,
			"SELECT set_config(:name, :value, false);\n",
			name => 'sms.api_key_secret', value => 'VALUE');
	}
	return;
}

# --- PostgreSQL's default logging: errors and their STATEMENT lines
all_spellings('default logging:');
# an application's own statement, with a column of the same name, fails
$node->psql('postgres',
	q{SELECT auth_token FROM app_sessions WHERE auth_token = 'control-17-1' AND 1/0 = 1});
wait_for_marker('marker-17-default');

# --- every statement logged, with its duration
$node->append_conf('postgresql.conf',
	"log_statement = 'all'\nlog_min_duration_statement = 0\n");
$node->reload;
$node->poll_query_until('postgres', 'SHOW log_statement', 'all')
  or die 'log_statement = all did not take effect';
$node->poll_query_until('postgres', 'SHOW log_min_duration_statement', '0')
  or die 'log_min_duration_statement = 0 did not take effect';

all_spellings('log_statement = all:');
$node->safe_psql('postgres',
	q{INSERT INTO app_sessions VALUES (1, 'control-17-2'); SELECT auth_token FROM app_sessions WHERE auth_token = 'control-17-3'});
# the worker, too, has applied every reload above, and with it each value
# ALTER SYSTEM gave, before the log is searched
reload_and_wait($node);
wait_for_marker('marker-17-all');

# --- no value anywhere in the log
my $log = slurp_file($node->logfile);
for my $value (sort { ($a =~ /(\d+)$/)[0] <=> ($b =~ /(\d+)$/)[0] } keys %spelling)
{
	unlike($log, qr/\Q$value\E(?!\d)/, "not in the log: $spelling{$value}");
}

# --- the events were logged, redacted, not dropped
my $count = sub { my ($re) = @_; my @m = ($log =~ /$re/g); return scalar @m; };
SKIP:
{
	# 18 names the setting as it is defined, however the statement spelled it
	skip 'PostgreSQL 18 reports the name as defined', 1
	  if $node->safe_psql('postgres', 'SHOW server_version_num') >= 180000;
	cmp_ok($count->(qr/ERROR:  parameter "SMS\.AUTH_TOKEN" cannot be changed now/), '>=', 2,
		'the error of an upper-case SET is logged with the name as written');
}
cmp_ok($count->(qr/ERROR:  parameter "[^"]+" cannot be changed now/), '>=', 30,
	'the errors are logged');
cmp_ok($count->(qr/unterminated quoted string at or near "\.\.\."/), '>=', 4,
	'the unterminated string is logged without its content');
cmp_ok($count->(qr/parameter "sms\.auth_token" changed to "\.\.\."/), '>=', 2,
	'the reload is logged without the new value');
cmp_ok($count->(qr/LOG:  statement: \(statement hidden: it names a secret setting\)/), '>=', 15,
	'log_statement: the statements are logged, hidden');
cmp_ok($count->(qr/LOG:  execute \S+: \(statement hidden: it names a secret setting\)/), '>=', 8,
	'log_statement: the extended protocol\'s execute is logged, hidden');
cmp_ok($count->(qr/LOG:  duration: [0-9.]+ ms  (parse|bind) \S+: \(statement hidden: it names a secret setting\)/),
	'>=', 8, 'log_min_duration_statement: parse and bind are logged, hidden');
cmp_ok($count->(qr/LOG:  execute \S+: SELECT set_config\(\$1, \$2, false\)/), '==', 0,
	'a statement whose bind parameters name a secret is hidden too');

# --- an application's own column named auth_token is not a secret
like($log, qr/STATEMENT:  SELECT auth_token FROM app_sessions WHERE auth_token = 'control-17-1'/,
	'default logging: an application statement naming its own auth_token column keeps its STATEMENT line');
like($log, qr/LOG:  statement: INSERT INTO app_sessions VALUES \(1, 'control-17-2'\)/,
	'log_statement: an application statement writing its own auth_token column is logged in full');
like($log, qr/LOG:  statement: SELECT auth_token FROM app_sessions WHERE auth_token = 'control-17-3'/,
	'log_statement: an application statement reading its own auth_token column is logged in full');

done_testing();
