# test/test.mk: the project's own targets, included by the Makefile.
#
# make deps   install what building and testing need (Debian, as root)
# make test   pg_regress, TAP and conformance tests, each against a real
#             PostgreSQL server started for the test and an HTTP server on
#             127.0.0.1 (the Twilio emulator, or Prism)
# make demo   a throwaway cluster and the emulator; messages sent from SQL
# make bench  benchmarks that print figures
# make test-ha  the extension under Patroni (etcd, two nodes, synchronous
#             mode): a leader killed, a switchover, a stalled standby and a
#             dead replica while 5,000 messages drain (test/ha/run.py);
#             HA_VARIANTS=kill (or a comma-separated list) runs some only
#
# initdb refuses to run as root, so as root the servers run as the
# unprivileged user $(TEST_USER), from a scratch copy of the tests that this
# user owns.

TEST_USER ?= postgres
PG_BINDIR := $(if $(PG_CONFIG),$(shell $(PG_CONFIG) --bindir))
PGXS_SRC := $(abspath $(dir $(PGXS))/../..)
PG_REGRESS_BIN := $(PGXS_SRC)/src/test/regress/pg_regress
PG_PERL_LIB := $(PGXS_SRC)/src/test/perl

DEB_PACKAGES = chromium chromium-driver build-essential postgresql-$(PG_MAJOR) postgresql-server-dev-$(PG_MAJOR) \
	libcurl4-openssl-dev libmicrohttpd-dev nettle-dev libjansson-dev libipc-run-perl curl openssl \
	pkg-config clang libclang-rt-dev

IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
ifeq ($(IS_ROOT),yes)
RUN_AS_TEST_USER = runuser -u $(TEST_USER) --
else
RUN_AS_TEST_USER =
endif

EMULATOR = test/emulator/twilio-emulator

.PHONY: install-emulator uninstall-emulator deps emulator npm-deps prism-deps sdk-deps warnings test test-suite test-matrix demo-run bench-run test-regress test-tap demo bench fuzz fuzz-build ha-deps test-ha test-ha-run

# The reply parser under libFuzzer, AddressSanitizer and UBSan, built as a
# frontend program against PostgreSQL's own JSON parser (libpgcommon).
FUZZ_SECONDS ?= 60
FUZZ_BIN = test/fuzz/fuzz_reply
PG_INCLUDEDIR_SERVER := $(if $(PG_CONFIG),$(shell $(PG_CONFIG) --includedir-server))
PG_PKGLIBDIR_A := $(if $(PG_CONFIG),$(shell $(PG_CONFIG) --pkglibdir))

$(FUZZ_BIN): test/fuzz/fuzz_reply.c src/twilio_json.c src/twilio_json.h
	clang -g -O1 -Wno-ignored-attributes \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-DFRONTEND -Isrc -I$(PG_INCLUDEDIR_SERVER) -I$(dir $(PG_INCLUDEDIR_SERVER))internal \
		-o $@ test/fuzz/fuzz_reply.c src/twilio_json.c \
		$(PG_PKGLIBDIR_A)/libpgcommon.a $(PG_PKGLIBDIR_A)/libpgport.a

fuzz-build: $(FUZZ_BIN)

# make fuzz: a bounded run (FUZZ_SECONDS); the corpus grows in a scratch copy
fuzz: deps $(FUZZ_BIN)
	@work=$$(mktemp -d /tmp/sms-fuzz.XXXXXX); cp test/fuzz/corpus/* "$$work/"; \
	echo "== fuzzing the reply parser for $(FUZZ_SECONDS) s (libFuzzer, ASan, UBSan)"; \
	status=0; ./$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=1048576 -rss_limit_mb=2048 \
		"$$work" > "$$work.log" 2>&1 || status=$$?; \
	grep -E "^(Done|==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$$work.log"; \
	if [ $$status -ne 0 ]; then tail -n 40 "$$work.log"; fi; \
	rm -rf "$$work" "$$work.log"; exit $$status

# $(call install_missing,PACKAGES,TARGET): install those of the Debian
# packages that are missing (only as root; others are told to run TARGET
# as root)
define install_missing
@missing=""; for p in $(1); do \
	dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
	if [ "$(IS_ROOT)" = yes ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages:$$missing (run $(2) as root)"; exit 1; \
	fi; \
fi
endef

# Install missing Debian packages (only as root; others must have them).
deps:
ifeq ($(PG_MAJOR),)
	@# apt knows no postgresql package yet (a machine whose package lists
	@# were never fetched): fetch them, then decide
	@[ "$(IS_ROOT)" = yes ] && [ -z "$(APT_UPDATED)" ] || \
		{ echo "apt knows no package postgresql: run apt-get update as root, or name the major: make PG_MAJOR=N ..."; exit 1; }
	apt-get update -qq
	@$(MAKE) --no-print-directory deps APT_UPDATED=yes
else
	$(call install_missing,$(DEB_PACKAGES),make deps)
endif

emulator:
	$(MAKE) -C test/emulator

# make install also puts the emulator on the PATH as sms-emulator, for
# local development (README, "Local development"): into /usr/local/bin,
# since PGXS's bindir is not on a Debian user's PATH.  It needs
# libmicrohttpd-dev, nettle-dev and libjansson-dev (make deps); without
# them the extension installs alone, and says so.
EMULATOR_BINDIR ?= /usr/local/bin
install: install-emulator
install-emulator:
	@if pkg-config --exists libmicrohttpd nettle jansson 2>/dev/null; then \
		$(MAKE) -s -C test/emulator && \
		install -d '$(DESTDIR)$(EMULATOR_BINDIR)' && \
		install -m 755 $(EMULATOR) '$(DESTDIR)$(EMULATOR_BINDIR)/sms-emulator'; \
	else \
		echo "sms: sms-emulator not installed: libmicrohttpd-dev, nettle-dev or libjansson-dev is missing (make deps installs them)"; \
	fi
uninstall: uninstall-emulator
uninstall-emulator:
	rm -f '$(DESTDIR)$(EMULATOR_BINDIR)/sms-emulator'

# npm packages, each directory's pinned in its package-lock.json (npm from
# Debian if absent), installed again only when that lock file changes:
# Prism (test/prism, 090_prism.pl) and Twilio's Node.js SDK (test/sdk,
# 027_twilio_sdk.pl)
NPM_DIRS = test/prism test/sdk
npm-deps: $(NPM_DIRS:%=%/node_modules/.package-lock.json)
prism-deps: test/prism/node_modules/.package-lock.json
sdk-deps: test/sdk/node_modules/.package-lock.json
%/node_modules/.package-lock.json: %/package-lock.json
	@command -v npm >/dev/null || { [ "$(IS_ROOT)" = yes ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# A scratch directory the test user owns, holding a copy of the tests.
TEST_ROOT = $(shell mktemp -d /tmp/sms-test.XXXXXX)

# No warning from gcc or from clang, with -Wall -Wextra, on this
# PostgreSQL's headers: every source through both, warnings as errors.
# (PostgreSQL's headers say gnu_printf, which clang does not know.)
CLANG_WARNINGS = -Wall -Wextra -Wno-unused-parameter -Wno-ignored-attributes \
	-Wno-compound-token-split-by-macro -Werror
warnings:
	@for f in $(OBJS:.o=.c); do \
		$(CC) $(CFLAGS) $(CPPFLAGS) -Werror -c -o /dev/null $$f || exit 1; \
		$(or $(CLANG),clang) $(CLANG_WARNINGS) $(CPPFLAGS) -fsyntax-only $$f || exit 1; \
	done; echo "== no warning from $(CC) or $(or $(CLANG),clang) in $(words $(OBJS)) files"

# Each target installs what it needs first, then goes on in a new make,
# which reads pg_config's answers once the server's packages are there.
test: deps
	$(MAKE) all
	$(MAKE) warnings
	$(MAKE) install
	$(MAKE) emulator
	$(MAKE) -C test/emulator check-segments check-signature
	$(MAKE) npm-deps
	$(MAKE) fuzz FUZZ_SECONDS=10
	$(MAKE) test-suite

test-suite:
	@root="$(TEST_ROOT)"; \
	tar --exclude=test/prism/node_modules --exclude=test/sdk/node_modules \
		-cf - sql expected test README.md src/outcome.c src/job.h | tar -C "$$root" -xf -; \
	prism="$(CURDIR)/test/prism"; \
	if ! $(RUN_AS_TEST_USER) test -r "$$prism/node_modules/.package-lock.json"; then \
		cp -r test/prism/node_modules "$$root/test/prism/"; prism="$$root/test/prism"; fi; \
	sdk="$(CURDIR)/test/sdk"; \
	if ! $(RUN_AS_TEST_USER) test -r "$$sdk/node_modules/.package-lock.json"; then \
		cp -r test/sdk/node_modules "$$root/test/sdk/"; sdk="$$root/test/sdk"; fi; \
	if [ "$(IS_ROOT)" = yes ]; then chown -R $(TEST_USER) "$$root"; fi; \
	echo "== pg_regress (temporary instance) in $$root"; \
	cd "$$root" && $(RUN_AS_TEST_USER) $(PG_REGRESS_BIN) \
		--temp-instance="$$root/tmp_regress" \
		--temp-config=test/regress.conf \
		--inputdir=. --outputdir="$$root" \
		--bindir=$(PG_BINDIR) \
		--dbname=contrib_regression \
		$(REGRESS) || { cat "$$root/regression.diffs"; exit 1; }; \
	echo "== TAP tests"; \
	cd "$$root" && $(RUN_AS_TEST_USER) env \
		PATH="$(PG_BINDIR):$$PATH" \
		TESTDIR="$$root" \
		TESTDATADIR="$$root/tmp_check" \
		TESTLOGDIR="$$root/tmp_check/log" \
		PG_REGRESS="$(PG_REGRESS_BIN)" \
		SMS_EMULATOR="$$root/$(EMULATOR)" \
		SMS_PRISM_DIR="$$prism" \
		SMS_SDK_DIR="$$sdk" \
		prove -I "$(PG_PERL_LIB)" -I test/perl $(PROVE_FLAGS) $(or $(TESTS),test/t/*.pl) \
		|| { tail -n 60 "$$root"/tmp_check/log/regress_log_* 2>/dev/null | tail -n 200; \
			echo "test files and logs kept in $$root"; exit 1; }; \
	if [ -f "$$root/tmp_check/log/inbox.png" ]; then \
		mkdir -p "$(CURDIR)/tmp_check/log" && cp "$$root/tmp_check/log/inbox.png" "$(CURDIR)/tmp_check/log/" && \
		echo "== the inbox page as 026 left it (Chromium's screenshot): $(CURDIR)/tmp_check/log/inbox.png"; fi; \
	rm -rf "$$root"

demo: deps
	$(MAKE) all
	$(MAKE) install
	$(MAKE) emulator
	$(MAKE) demo-run

demo-run:
	@root="$(TEST_ROOT)"; \
	cp test/demo.sh test/demo.sql "$$root/"; cp $(EMULATOR) "$$root/"; \
	if [ "$(IS_ROOT)" = yes ]; then chown -R $(TEST_USER) "$$root"; fi; \
	cd "$$root" && $(RUN_AS_TEST_USER) env PATH="$(PG_BINDIR):$$PATH" \
		DEMO_KEEP="$(DEMO_KEEP)" bash ./demo.sh "$$root"

bench: deps
	$(MAKE) all
	$(MAKE) install
	$(MAKE) emulator
	$(MAKE) bench-run

bench-run:
	@for tool in wrk valgrind; do command -v $$tool >/dev/null || { [ "$(IS_ROOT)" = yes ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$tool >/dev/null; }; done
	@root="$(TEST_ROOT)"; \
	tar --exclude=test/prism/node_modules --exclude=test/sdk/node_modules -cf - test | tar -C "$$root" -xf -; \
	if [ "$(IS_ROOT)" = yes ]; then chown -R $(TEST_USER) "$$root"; fi; \
	cd "$$root" && $(RUN_AS_TEST_USER) env PATH="$(PG_BINDIR):$$PATH" \
		PG_PERL_LIB="$(PG_PERL_LIB)" BENCH_ONLY="$(BENCH_ONLY)" \
		bash test/bench/run.sh "$$root" && rm -rf "$$root"

# make test-ha: the extension under the HA manager Patroni (Debian's
# patroni and etcd-server, installed here as root if missing): one etcd and
# two Patroni nodes of PostgreSQL $(PG_MAJOR), all on 127.0.0.1, one fresh
# cluster per variant (see test/ha/run.py).  HA_VARIANTS picks variants
# (kill, switchover, stalled-standby, replica-death), HA_MESSAGES the number
# of messages (5000), HA_FLAGS passes more options (e.g. --ttl 10).
HA_PACKAGES = patroni etcd-server
HA_PYTHON ?= /usr/bin/python3

ha-deps:
	$(call install_missing,$(HA_PACKAGES),make test-ha)

test-ha: deps
	$(MAKE) ha-deps
	$(MAKE) all
	$(MAKE) install
	$(MAKE) emulator
	$(MAKE) test-ha-run

test-ha-run:
	@root="$(TEST_ROOT)"; \
	tar -cf - test/ha | tar -C "$$root" -xf -; cp $(EMULATOR) "$$root/"; \
	if [ "$(IS_ROOT)" = yes ]; then chown -R $(TEST_USER) "$$root"; fi; \
	cd "$$root" && $(RUN_AS_TEST_USER) env PATH="$(PG_BINDIR):$$PATH" \
		$(HA_PYTHON) test/ha/run.py --root "$$root" --emulator "$$root/twilio-emulator" \
		--pg-bindir "$(PG_BINDIR)" $(if $(HA_VARIANTS),--variants "$(HA_VARIANTS)") \
		$(if $(HA_MESSAGES),--messages $(HA_MESSAGES)) $(HA_FLAGS) \
		|| { echo "test files and logs kept in $$root"; exit 1; }; \
	rm -rf "$$root"

# make test-matrix: make test here, then on PostgreSQL 17 and 18 in chroots
# of Debian 13 and unstable (see test/matrix/chroot.sh; as root)
MATRIX_VERSIONS ?= 17 18
test-matrix: test
	@for v in $(filter-out $(DISTRO_PG),$(MATRIX_VERSIONS)); do \
		env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PG test/matrix/chroot.sh $$v test || exit 1; done

