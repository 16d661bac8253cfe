# README.md's table of outcomes (section "States") says what src/outcome.c's
# table of transitions does: for each outcome the row's next state, whether
# it fails after the last attempt, whether the attempt is given back, and
# when the row is due again.
use strict;
use warnings;
use Test::More;

# make test copies README.md and these sources beside the tests
my $src = '.';

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "cannot read $path: $!";
	local $/;
	return <$fh>;
}

my $code = slurp("$src/src/outcome.c");
my $readme = slurp("$src/README.md");

my %next_words = (
	NEXT_KEEP => 'never',
	NEXT_NOW => 'at once',
	NEXT_BACKOFF => 'backoff',
	NEXT_GRACE => 'sms.reconcile_grace',
	NEXT_LOOKUP_BACKOFF => 'backoff, at least',);

my %in_code;
while ($code =~
	/\[(OUTCOME_\w+)\]\s*=\s*\{"(\w+)",\s*(true|false),\s*(?:NULL|"[^"]*"),\s*(true|false),\s*(NEXT_\w+)\}/g
  )
{
	$in_code{$1} = { state => $2, fails => $3 eq 'true', back => $4 eq 'true', next => $5 };
}

my %in_readme;
for my $line (split /\n/, $readme)
{
	my ($outcome, $state, $exhausted, $attempt, $due) =
	  $line =~ /^\| `(OUTCOME_\w+)`[^|]*\| `(\w+)` \|([^|]*)\|([^|]*)\|([^|]*)\|$/
	  or next;
	$in_readme{$outcome} = {
		state => $state,
		fails => ($exhausted =~ /failed/ ? 1 : 0),
		back => ($attempt =~ /given back/ ? 1 : 0),
		due => $due };
}

# every outcome of job.h's enum is in the code's table
my $job_h = slurp("$src/src/job.h");
my ($enum) = $job_h =~ /typedef enum SmsOutcome\s*\{(.*?)\}/s;
my @outcomes = $enum =~ /\b(OUTCOME_\w+)/g;
ok(@outcomes >= 9, 'job.h lists the outcomes');

for my $o (@outcomes)
{
	my $c = $in_code{$o};
	my $r = $in_readme{$o};
	ok($c, "$o has a transition in src/outcome.c") or next;
	ok($r, "$o is in README.md's table") or next;
	is($r->{state}, $c->{state}, "$o: the row becomes $c->{state}");
	is($r->{fails}, $c->{fails} ? 1 : 0, "$o: after the last attempt, as the code says");
	is($r->{back}, $c->{back} ? 1 : 0, "$o: the attempt is given back or counted, as the code says");
	like($r->{due}, qr/\Q$next_words{$c->{next}}\E/, "$o: due again as $c->{next}");
}
is_deeply([ sort keys %in_readme ], [ sort @outcomes ], 'README.md names no other outcome');

done_testing();
