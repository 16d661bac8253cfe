# test/matrix/matrix.mk: make TARGET PG=N, for a PostgreSQL major N that
# this machine's Debian does not carry, runs make TARGET in a chroot of the
# Debian that does (see chroot.sh; as root).  The chroot is built on first
# use and kept.

.PHONY: all install test demo bench deps warnings
all install test demo bench deps warnings:
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PG test/matrix/chroot.sh $(PG) $@
