
# What an open inbox page costs the emulator: wrk's create rate with no
# page, then with the page open in headless Chromium (its event stream
# connected, every message and status change rendered), side by side in
# pairs on the same emulator, and the ratio of each pair.  Also the event
# stream alone (curl, no browser), which separates the emulator's share of
# the cost from the browser's, which shares these cores.
#
# usage: perl -I test/perl -I <PostgreSQL's test/perl> inbox_page.pl [PAIRS]
# (run.sh's "inbox page" section; needs wrk, chromium and chromium-driver)
use strict;
use warnings;
# PostgreSQL::Test::Utils sends STDOUT to a log file: keep the terminal
my $say;
BEGIN { open($say, '>&', \*STDOUT) or die "stdout: $!"; $say->autoflush(1); }
use IPC::Run;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep time);
use SmsTest;
use SmsBrowser;

my $pairs = $ARGV[0] // 5;
my $browser = SmsBrowser->start or die "no browser: $@\n";
my $emu = start_emulator();
my $dir = tempdir(CLEANUP => 1);
my $lua = "$dir/create.lua";

open my $fh, '>', $lua or die "$lua: $!";
print $fh <<"LUA";
wrk.method = "POST"
wrk.path = "/2010-04-01/Accounts/$SmsTest::ACCOUNT_SID/Messages.json"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic QUNhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYTplbXVsYXRvci10b2tlbg=="
-- a number per connection, so the page has conversations to keep
local n = 0
function setup(thread) n = n + 1; thread:set("n", n) end
function init(args) wrk.body = "To=%2B1555001234" .. n .. "&From=%2B15017122661&Body=bench%20" .. n end
LUA
close $fh;

sub rate
{
	$emu->reset;
	my $out = `wrk -t2 -c32 -d5s -s $lua ${\ $emu->url}`;
	$out =~ /Requests\/sec:\s+([\d.]+)/ or die "wrk: $out\n";
	return $1;
}

# CPU seconds (user + system) used so far by the processes named like re
# (or with the pid given)
sub cpu_of
{
	my ($re, $pid) = @_;
	my $ticks = 0;
	for my $stat ($pid ? ("/proc/$pid/stat") : glob '/proc/[0-9]*/stat')
	{
		open my $f, '<', $stat or next;
		my $line = <$f> // next;
		my ($comm, @rest) = $line =~ /\((.*)\)\s+(.*)/ ? ($1, split ' ', $2) : next;
		$ticks += $rest[11] + $rest[12] if $comm =~ $re;
	}
	return $ticks / 100;
}
my $emu_pid = $emu->{handle}{KIDS}[0]{PID};

sub median { my @s = sort { $a <=> $b } @_; return $s[ $#s / 2 ]; }

my (@ratio, @stream_ratio);
for my $i (1 .. $pairs)
{
	$browser->go('about:blank');
	my $without = rate();

	# the event stream alone
	my ($in, $out, $err) = ('', '', '');
	my $curl = IPC::Run::start([ 'curl', '-sN', $emu->url . '/_emulator/events' ],
		\$in, '>', '/dev/null', '2>', \$err);
	usleep(300_000);
	my $stream = rate();
	$curl->kill_kill;

	$browser->go($emu->url . '/');
	my $deadline = time() + 20;
	until (($browser->js(q{return document.getElementById('live').textContent}) // '') eq 'live')
	{
		die "the page did not connect its event stream: "
		  . ($browser->js(q{return document.body.innerText}) // 'no page') . "\n"
		  if time() > $deadline;
		usleep(100_000);
	}
	my ($browser0, $emu0) = (cpu_of(qr/^chrom/), cpu_of(qr/emulator/, $emu_pid));
	my $with = rate();
	my ($browser_cpu, $emu_cpu) = (cpu_of(qr/^chrom/) - $browser0, cpu_of(qr/emulator/, $emu_pid) - $emu0);
	my $shown = $browser->js(q{return document.querySelectorAll('#numbers li, #numbers button').length});
	$browser->go('about:blank');

	push @ratio, $with / $without;
	push @stream_ratio, $stream / $without;
	printf $say "  pair %d: no page %.0f req/s, event stream alone %.0f (%.2f), page open %.0f (%.2f;"
	  . " Chromium used %.1f s of CPU in those 5 s, the emulator %.1f s)\n",
	  $i, $without, $stream, $stream / $without, $with, $with / $without, $browser_cpu, $emu_cpu;
}
printf $say "  median ratio, page open / no page: %.2f; event stream alone / no page: %.2f\n",
  median(@ratio), median(@stream_ratio);
$browser->stop;
$emu->stop;
