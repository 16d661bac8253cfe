# test/matrix/matrix.mk: make TARGET PG=N, for a PostgreSQL major N that
# this machine's Debian does not carry, runs make TARGET in a chroot of the
# Debian that does (see chroot.sh; as root).  The chroot is built on first
# use and kept.  TESTS, PROVE_FLAGS and FUZZ_SECONDS are passed on.

MATRIX_VARS = $(foreach v,TESTS PROVE_FLAGS FUZZ_SECONDS,$(if $($(v)),$(v)="$($(v))"))

.PHONY: all install test demo bench deps warnings fuzz
all install test demo bench deps warnings fuzz:
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PG test/matrix/chroot.sh $(PG) $(MATRIX_VARS) $@
