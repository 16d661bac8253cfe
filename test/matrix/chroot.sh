#!/bin/bash
# test/matrix/chroot.sh VERSION [TARGET|VAR=VALUE...]
#
# Runs `make TARGET...` (default: test) of this source tree against
# PostgreSQL VERSION, inside a Debian chroot whose archive carries that
# version: 17 is Debian 13 (trixie), 18 is Debian unstable (sid).  The
# chroot is built once with debootstrap from the mirror the host's apt
# already uses and kept in $SMS_CHROOT_DIR (default /var/tmp/sms-chroots);
# make deps inside it installs the rest from the same archive.  Each run
# copies the working tree into the chroot afresh, so nothing built for the
# host is reused.  Nothing but Debian packages is downloaded: the npm
# packages (Prism, Twilio's Node.js SDK) are installed on the host (make
# npm-deps) and copied in.
#
# Inside the chroot no service may start (policy-rc.d) and installing the
# server creates no cluster: the tests start their own servers.  The chroot
# shares the host's network, and the tests bind 127.0.0.1 only.
set -euo pipefail

version=${1:?usage: $0 VERSION [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(test)

case "$version" in
	15) suite=bookworm ;;
	17) suite=trixie ;;
	18) suite=sid ;;
	*)
		echo "chroot.sh: no Debian suite known for PostgreSQL $version (15: bookworm, 17: trixie, 18: sid)" >&2
		exit 2 ;;
esac

if [ "$(id -u)" != 0 ]; then
	echo "chroot.sh: building and entering a chroot needs root" >&2
	exit 1
fi

src=$(cd "$(dirname "$0")/../.." && pwd)
base=${SMS_CHROOT_DIR:-/var/tmp/sms-chroots}
root=$base/$suite

# The mirror the host's apt uses (deb822 or one-line sources), not its
# security archive.
mirror=$(sed -n -E 's@^URIs:[[:space:]]+(https?://[^[:space:]]+/debian)/?$@\1@p; s@^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?[[:space:]].*@\2@p' \
	/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

mounted=()
unmount_all()
{
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -R "${mounted[$i]}" 2>/dev/null || umount -lR "${mounted[$i]}" 2>/dev/null || true
	done
	mounted=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM HUP

mount_into()
{
	local dir=$1
	mountpoint -q "$dir/proc" || { mount -t proc proc "$dir/proc"; mounted+=("$dir/proc"); }
	# (slaves from the start: unmounting them never reaches the host's)
	mountpoint -q "$dir/sys" || { mount --rbind --make-rslave /sys "$dir/sys"; mounted+=("$dir/sys"); }
	mountpoint -q "$dir/dev" || { mount --rbind --make-rslave /dev "$dir/dev"; mounted+=("$dir/dev"); }
	cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
}

# (the lock's descriptor is not passed on: a server a failed test left
# running would hold it)
in_chroot()
{
	chroot "$root" 9>&- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
		CI="${CI:-}" "$@"
}

build_chroot()
{
	local new=$root.new
	echo "== building a $suite chroot for PostgreSQL $version in $root (from $mirror)"
	unmount_all
	umount -R "$new/proc" "$new/sys" "$new/dev" 2>/dev/null || true
	# (never into a mount left behind: it would be the host's /dev or /sys)
	rm -rf --one-file-system "$new"
	mkdir -p "$base"
	command -v debootstrap > /dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null; }
	debootstrap --variant=minbase --include=make,ca-certificates "$suite" "$new" "$mirror" \
		> "$base/$suite.debootstrap.log" 2>&1 ||
		{ tail -n 30 "$base/$suite.debootstrap.log"; exit 1; }

	# No service starts inside, and the server package creates no cluster.
	printf '#!/bin/sh\nexit 101\n' > "$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	mkdir -p "$new/etc/postgresql-common/createcluster.d"
	echo 'create_main_cluster = false' > "$new/etc/postgresql-common/createcluster.d/sms-test.conf"
	# An archive snapshot's Release files may be past their Valid-Until (sid).
	cat > "$new/etc/apt/apt.conf.d/99sms-test" <<'APT'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT

	local saved_root=$root
	root=$new
	mount_into "$new"
	in_chroot apt-get update -qq
	in_chroot apt-get install -y -qq nodejs > /dev/null
	unmount_all
	root=$saved_root
	if [ -e "$root" ]; then
		umount -R "$root/proc" "$root/sys" "$root/dev" 2>/dev/null || true
		rm -rf --one-file-system "$root"
	fi
	mv -T "$new" "$root"
	touch "$root/.sms-ready"
}

# one run at a time per chroot: runs share its mounts and its packages
mkdir -p "$base"
exec 9> "$base/$suite.lock"
flock 9

[ -e "$root/.sms-ready" ] || build_chroot

# Prism's and the SDK's packages come from npm through the host's npm; the
# chroot has Debian's nodejs to run them.
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PG make -C "$src" --no-print-directory npm-deps

echo "== PostgreSQL $version: make ${targets[*]} in the $suite chroot $root"
rm -rf "$root/build/sms"
mkdir -p "$root/build/sms"
tar -C "$src" --exclude-vcs --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
	--exclude=./test/emulator/twilio-emulator --exclude=./test/fuzz/fuzz_reply \
	--exclude=./results --exclude=./tmp_check --exclude=./log -cf - . |
	tar -C "$root/build/sms" -xf -
mount_into "$root"
# PG_MAJOR pins the version: the suite's own postgresql may move on
in_chroot make -C /build/sms --no-print-directory PG_MAJOR="$version" "${targets[@]}"
