# cmcd — see README.md. `make run` starts the daemon on a simulated chassis;
# `make test` installs what the tests need, then runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X cmcd/internal/version.Version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
export CGO_ENABLED := 0

.PHONY: all build run test deps check bench soak clean

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
	$(GO) mod download

check: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

# Every test. CMCD_KILLS=10000 (kill test) and CMCD_SOAK=1 enable the long modes.
test: check build
	set -o pipefail; $(GO) test -count=1 -timeout 25m -v ./... 2>&1 | tee bin/test.log \
		| grep -E '^(ok|FAIL|--- FAIL|panic:|SUMMARY)|^\s+\S+_test\.go:[0-9]+'
	@echo "full log: bin/test.log"

bench: build
	mkdir -p bench/out
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./syncsel/ | tee bench/out/syncsel.txt | grep -E 'SUMMARY|^ok|FAIL' 
	set -o pipefail; $(GO) test -run '^$$' -bench SELList -benchtime 1x -count 1 ./ipmisrv/ | tee bench/out/ipmisrv.txt | grep -E 'sel list|^ok|FAIL'
	set -o pipefail; $(GO) test -run '^$$' -bench ChassisRefresh -benchtime 5x -count 1 ./board/ipmi/ ./board/ipmi/simbmc/ | tee bench/out/ipmi-refresh.txt | grep -E 'chassis refresh|^ok|FAIL'
	set -o pipefail; $(GO) run ./bench/ntpload | tee bench/out/ntp.txt
	set -o pipefail; $(GO) test -run '^$$' -bench Handle -benchtime 200000x -count 1 ./timesrc/server/ | tee bench/out/ntp-handle.txt | grep -E '^Benchmark|^ok|FAIL'

soak:
	CMCD_KILLS=10000 $(GO) test -count=1 -timeout 0 -run TestKill ./syncsel/

clean:
	rm -rf bin var
