# cmcd — see README.md. `make run` starts the daemon on a simulated chassis;
# `make test` installs what the tests need, then runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X cmcd/internal/version.Version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
export CGO_ENABLED := 0

.PHONY: all build run test deps check bench soak fuzz clean cross test-arm qemu qemu-kernel

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o bin/cmcd ./cmd/cmcd

# The daemon on the simulated chassis, data under ./var (git-ignored).
run: build
	mkdir -p var
	./bin/cmcd run --data ./var --board sim --sync-interval 5s \
		--redfish 127.0.0.1:8443 --insecure-http 127.0.0.1:8080 --ipmi 127.0.0.1:6230 --ntp 127.0.0.1:1230

deps:
	./scripts/install-deps.sh
	./scripts/fetch-arm-kernel.sh >/dev/null
	$(GO) mod download

# Debian's armhf kernel, tacoma device tree and modules for the emulated CMC
# (cached under $$HOME/.cache/cmcd/arm-kernel; cross/qemu's test fetches it too).
qemu-kernel:
	./scripts/fetch-arm-kernel.sh

# Boots the emulated CMC (cross/qemu) with its serial console on this terminal;
# Ctrl-A X quits. Flash images persist in bin/qemu; Redfish on 127.0.0.1:$(QEMU_PORT).
QEMU_PORT ?= 8080
qemu:
	./scripts/install-deps.sh
	$(GO) run ./cmd/qemucmc --dir bin/qemu --port $(QEMU_PORT)

check: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

# Every test. CMCD_KILLS=10000 (kill test) and CMCD_SOAK=1 enable the long modes.
test: check build
	set -o pipefail; $(GO) test -count=1 -timeout 25m -v ./... 2>&1 | tee bin/test.log \
		| grep -E '^(ok|FAIL|--- FAIL|panic:|SUMMARY)|^\s+\S+_test\.go:[0-9]+'
	@echo "full log: bin/test.log"
	$(MAKE) --no-print-directory test-arm

# The unit tests of the hardware-independent packages as 32-bit ARM binaries
# under qemu-user (no binfmt_misc needed: CMCD_TEST_EXEC makes the crash tests
# start their children through the emulator too): the whole list as ARMv7
# (AST2600, Cortex-A7), the storage packages again as ARMv6 on an ARM1176
# (AST2500). Excluded in the tests themselves: the power-cut test (ptrace
# harness, linux/amd64 only). The kill test runs 10 kills here.
ARM_TEST_PKGS := ./syncsel/ ./accounts/ ./flash/... ./clock/... ./board/sim/ ./board/ipmi/... \
	./board/fru/ ./board/pmbus/ ./board/hwmon/ ./board/eeprom/ ./board/gpio/ ./board/hw/ \
	./internal/rfschema/ ./internal/testexec/ ./redfish/ ./daemon/ $(ARM_TEST_PKGS_EXTRA)
# Skipped under emulation (they run natively above): tests bound by wall-clock
# deadlines that qemu-user's 10-50x slowdown breaks, and tests that exec a
# host-built peer binary.
ARM_SKIP := TestDeadNodeDoesNotBlockOthers|TestSimBMCInFrontOfIpmiSim|TestSSESlowClientAndLimits|TestRedfishtool
ARMV6_TEST_PKGS := ./syncsel/ ./accounts/ ./board/fru/ ./board/pmbus/ ./board/hw/
test-arm: deps
	@mkdir -p bin; t0=$$(date +%s); set -o pipefail; \
	CMCD_TEST_EXEC=qemu-arm-static GOARCH=arm GOARM=7 $(GO) test -count=1 -timeout 15m -skip '$(ARM_SKIP)' \
		-exec qemu-arm-static $(ARM_TEST_PKGS) 2>&1 | tee bin/test-arm.log | grep -E '^(ok|FAIL|--- FAIL|panic:)|SUMMARY' && \
	CMCD_TEST_EXEC="qemu-arm-static -cpu arm1176" GOARCH=arm GOARM=6 $(GO) test -count=1 -timeout 15m -skip "TestKillDuringRounds|TestKillAtFirstStart" \
		-exec "qemu-arm-static -cpu arm1176" $(ARMV6_TEST_PKGS) 2>&1 | tee -a bin/test-arm.log | grep -E '^(ok|FAIL|--- FAIL|panic:)' && \
	echo "test-arm: armv7 + armv6 unit tests under qemu-user passed in $$(( $$(date +%s) - t0 ))s (log: bin/test-arm.log)"

bench: build
	mkdir -p bench/out
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./syncsel/ | tee bench/out/syncsel.txt | grep -E 'SUMMARY|^ok|FAIL' 
	set -o pipefail; $(GO) test -run '^$$' -bench SELList -benchtime 1x -count 1 ./ipmisrv/ | tee bench/out/ipmisrv.txt | grep -E 'sel list|^ok|FAIL'
	set -o pipefail; $(GO) test -run '^$$' -bench ChassisRefresh -benchtime 5x -count 1 ./board/ipmi/ ./board/ipmi/simbmc/ | tee bench/out/ipmi-refresh.txt | grep -E 'chassis refresh|^ok|FAIL'
	set -o pipefail; $(GO) run ./bench/ntpload | tee bench/out/ntp.txt
	set -o pipefail; ./bench/redfish.sh | tee bench/out/redfish.txt
	set -o pipefail; $(GO) test -run '^$$' -bench Takeover -benchtime 1x -count 1 -timeout 20m ./pair/lab/ | tee bench/out/takeover.txt | grep -E 'SUMMARY|^ok|FAIL'

# Fuzz the Redfish request decoding and routing (the seeds run in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzServeHTTP -fuzztime $(FUZZTIME) ./redfish/

# Static cmcd for linux/arm GOARM=6 and 7 and linux/arm64 into bin/cross/, with
# their sizes and xz -9 sizes; fails when armv7 is over its 14 MB budget.
cross:
	GO=$(GO) VERSION=$(VERSION) ./scripts/cross.sh
	set -o pipefail; $(GO) test -run '^$$' -bench Handle -benchtime 200000x -count 1 ./timesrc/server/ | tee bench/out/ntp-handle.txt | grep -E '^Benchmark|^ok|FAIL'

soak:
	CMCD_KILLS=10000 $(GO) test -count=1 -timeout 0 -run TestKill ./syncsel/

clean:
	rm -rf bin var
