
# SmsBrowser: Debian's Chromium, headless, driven through chromedriver's
# W3C WebDriver API with core Perl (HTTP::Tiny, JSON::PP): nothing is
# downloaded, and everything stays on 127.0.0.1.

package SmsBrowser;

use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(usleep time);

my $json = JSON::PP->new->utf8->canonical;

# Start chromedriver and a headless Chromium session; undef (with the
# reason in $@) when either is not installed.
sub start
{
	my ($class) = @_;
	for my $bin (qw(chromedriver chromium))
	{
		if (!grep { -x "$_/$bin" } split /:/, $ENV{PATH} . ':/usr/bin')
		{
			$@ = "$bin is not installed";
			return undef;
		}
	}
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start([ 'chromedriver', "--port=$port", '--allowed-ips=127.0.0.1' ],
		\$in, \$out, \$err);
	my $self = bless { handle => $h, base => "http://127.0.0.1:$port", http => HTTP::Tiny->new(timeout => 30) }, $class;
	my $deadline = time() + 20;
	until ($self->_request('GET', '/status')->{value}{ready})
	{
		die "chromedriver did not start: $err" if time() > $deadline;
		usleep(100_000);
	}
	my $s = $self->_request('POST', '/session', {
		capabilities => { alwaysMatch => {
			browserName => 'chrome',
			'goog:chromeOptions' => {
				binary => '/usr/bin/chromium',
				args => [ '--headless', '--no-sandbox', '--disable-gpu',
					'--window-size=1100,800', '--no-first-run' ] } } } });
	$self->{session} = $s->{value}{sessionId}
	  or die 'no WebDriver session: ' . $json->encode($s);
	return $self;
}

sub _request
{
	my ($self, $method, $path, $body) = @_;
	my $r = $self->{http}->request($method, $self->{base} . $path, {
		headers => { 'Content-Type' => 'application/json' },
		defined $body ? (content => $json->encode($body)) : () });
	return eval { $json->decode($r->{content}) } // { value => undef, status => $r->{status} };
}

sub _s { my ($self, $method, $path, $body) = @_; return $self->_request($method, "/session/$self->{session}$path", $body)->{value}; }

sub go { my ($self, $url) = @_; $self->_s('POST', '/url', { url => $url }); }

# Run JavaScript in the page; returns its value.
sub js { my ($self, $script, @args) = @_; return $self->_s('POST', '/execute/sync', { script => $script, args => \@args }); }

# An element by CSS selector (its WebDriver reference), or undef.
sub find
{
	my ($self, $css) = @_;
	my $v = $self->_s('POST', '/element', { using => 'css selector', value => $css });
	return ref $v eq 'HASH' ? (values %$v)[0] : undef;
}

# Click an element, as a user would (WebDriver scrolls it into view).
sub click { my ($self, $css) = @_; $self->_s('POST', '/element/' . $self->find($css) . '/click', {}); }

# Type into an element.
sub type { my ($self, $css, $text) = @_; $self->_s('POST', '/element/' . $self->find($css) . '/value', { text => $text }); }

# Choose the option of a <select> with this value.
sub choose { my ($self, $css, $value) = @_; $self->click(qq{$css option[value="$value"]}); }

sub screenshot
{
	my ($self, $file) = @_;
	my $png = $self->_s('GET', '/screenshot') // return;
	open my $fh, '>', $file or die "$file: $!";
	binmode $fh;
	print $fh decode_base64($png);
	close $fh;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{handle};
	$self->_request('DELETE', "/session/$self->{session}") if $self->{session};
	$self->{handle}->kill_kill;
	$self->{handle} = undef;
}

sub DESTROY { $_[0]->stop; }

1;
