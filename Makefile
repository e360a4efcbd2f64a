# The Makefile is medianet's CI contract: .ci/run calls `make test`, and the
# README tells users the same commands.

GO        ?= go
BIN       := bin
CMDS      := $(notdir $(wildcard cmd/*))
PKGS_UNIT  = $(shell $(GO) list ./... | grep -v '^github.com/medianet/medianet/test/')
PKGS_E2E  ?= ./test/...
FUZZTIME  ?= 10s
export CGO_ENABLED ?= 0

# Every test command runs through testsummary (internal/cmd/testsummary):
# readable progress, failures in full, and a count of skips with their
# reasons. With MEDIANET_STRICT_SKIPS=1 (.ci/run sets it) a skip that
# .ci/allowed-skips does not name fails the run.
TESTSUMMARY := $(BIN)/tools/testsummary
REPORTS     := $(BIN)/test-reports
SUMMARIZE    = $(TESTSUMMARY) -allow .ci/allowed-skips

.PHONY: all build deps kube-apiserver test test-unit test-e2e test-tools bench scale soak sim fmt vet lint fuzz clean demo docker-plugin image

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		echo "go build ./cmd/$$c"; \
		$(GO) build -trimpath -o $(BIN)/$$c ./cmd/$$c || exit 1; \
	done

deps:
	scripts/deps.sh

# kube-apiserver: the real API server the kubernetes IPAM source's tests
# run (internal/kubetest), built from the module proxy once per machine
# and cached beside the Go build cache (scripts/kube-apiserver.sh).
kube-apiserver:
	GO=$(GO) scripts/kube-apiserver.sh

# test: formatting and vet, unit tests (root-only ones run when root), then
# the end-to-end tests against real peers, one package at a time because
# they share dockerd, podman and iptables; it ends, failed or not, with how
# many tests ran, failed and skipped, and why they skipped.
test: deps kube-apiserver build vet
	@rm -f $(REPORTS)/unit.json $(REPORTS)/e2e.json
	@rc=0; $(MAKE) --no-print-directory -k test-unit test-e2e || rc=$$?; \
	records=$$(ls $(REPORTS)/unit.json $(REPORTS)/e2e.json 2>/dev/null); \
	if [ -n "$$records" ]; then $(TESTSUMMARY) -report $$records; fi; \
	exit $$rc

test-tools:
	@mkdir -p $(dir $(TESTSUMMARY)) $(REPORTS)
	@$(GO) build -o $(TESTSUMMARY) ./internal/cmd/testsummary

test-unit: test-tools
	@rm -f $(REPORTS)/unit.json
	CGO_ENABLED=1 $(SUMMARIZE) -name unit -record $(REPORTS)/unit.json -- \
		$(GO) test -json -race -count=1 -timeout 20m $(PKGS_UNIT)

test-e2e: build test-tools
	@rm -f $(REPORTS)/e2e.json
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(SUMMARIZE) -name e2e -record $(REPORTS)/e2e.json -- \
		$(GO) test -json -count=1 -p 1 -timeout 40m $(PKGS_E2E)

# bench: every benchmark, with iteration counts that make its figures
# meaningful; ratios against the reference plugins, Docker's macvlan
# driver and coturn are reported as metrics of the same run.
bench: build
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -skip 'AddDelFloor|Burst100' -benchtime 5x -count 1 \
		./ipam/... ./macvlan/... ./doctor/... ./natprobe/... ./dockerplugin/... ./metrics/... ./test/cni ./test/ipam ./test/conflict
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench AddDelFloor -benchtime 300x -count 1 ./test/cni
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench Burst100 -benchtime 10x -count 1 ./test/ipam
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench 'ADD$$' -benchtime 2000x -count 1 ./test/etcd
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench BlackholedClaim -benchtime 40x -count 1 ./test/etcd
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 30x -count 1 ./test/metrics
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 5x -count 1 ./test/k8s
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./test/natprobe ./test/docker ./test/swarm
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench FirstRTP -benchtime 3x -count 1 -timeout 30m ./test/media

# scale: the cluster simulation against a three-member etcd (not part of
# make test; about 10 minutes). MEDIANET_SCALE_NODES, _CHURN, _ETCD
# (plain, password, cert) tune it; the report goes to bin/scale.md. Then
# the block sources side by side (TestScaleSources: the etcd source, the
# kubernetes source on a real kube-apiserver, and Whereabouts' ADDs on
# the same API server, built by scripts/whereabouts.sh;
# MEDIANET_SCALE_SOURCES_NODES, _ADDS, _TIMEOUT (10s: 500 nodes starting at
# once pass the 2 s default on this machine), MEDIANET_WHEREABOUTS_LIMIT),
# reported in bin/scale-sources.md.
scale: build kube-apiserver
	ulimit -n 65536 2>/dev/null || true; \
	MEDIANET_BIN=$(CURDIR)/$(BIN) MEDIANET_SCALE_NODES=$${MEDIANET_SCALE_NODES:-100,500,1000} \
	MEDIANET_SCALE_CHURN=$${MEDIANET_SCALE_CHURN:-60s} MEDIANET_SCALE_OUT=$(CURDIR)/$(BIN)/scale.md \
		$(GO) test -count=1 -v -timeout 60m -run '^TestScale$$' ./test/scale
	ulimit -n 65536 2>/dev/null || true; \
	wb=$$(GO=$(GO) scripts/whereabouts.sh) && wbcrds=$$(GO=$(GO) scripts/whereabouts.sh crds) || \
		{ echo "make scale: Whereabouts did not build; the sources run without it"; wb=; wbcrds=; }; \
	MEDIANET_BIN=$(CURDIR)/$(BIN) MEDIANET_SCALE_SOURCES_NODES=$${MEDIANET_SCALE_SOURCES_NODES:-100,500} \
	MEDIANET_SCALE_SOURCES_ADDS=$${MEDIANET_SCALE_SOURCES_ADDS:-1000} MEDIANET_SCALE_SOURCES_TIMEOUT=$${MEDIANET_SCALE_SOURCES_TIMEOUT:-10s} \
	MEDIANET_SCALE_SOURCES_OUT=$(CURDIR)/$(BIN)/scale-sources.md \
	MEDIANET_WHEREABOUTS=$$wb MEDIANET_WHEREABOUTS_CRDS=$$wbcrds \
		$(GO) test -count=1 -v -timeout 90m -run '^TestScaleSources$$' ./test/scale

# soak: issue 10's soak, random CNI operations and faults on three nodes
# and a real etcd with the invariants checked after every step (root; make
# test runs 45 s of it). MEDIANET_SOAK_DURATION (default 10m) and
# MEDIANET_SOAK_SEED replay or lengthen a run; the step log's path is
# printed.
soak: build
	MEDIANET_BIN=$(CURDIR)/$(BIN) MEDIANET_SOAK=1 $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./test/soak

# sim: issue 18's deterministic simulator (internal/sim) against a real
# etcd on tmpfs, without -race (half the steps a second under it): fresh
# seeds for MEDIANET_SIM_DURATION (default 10m; make test runs 60 s of
# it in test/sim), or the seeds of MEDIANET_SIM_SEEDS (comma-separated),
# or the replay file MEDIANET_SIM_REPLAY. A failure prints its seed and
# its replay shrunk by ddmin; MEDIANET_SIM_OUT=DIR also writes it there.
sim:
	MEDIANET_SIM_DURATION=$${MEDIANET_SIM_DURATION:-10m} $(GO) test -count=1 -v -timeout 0 -run '^TestSim$$' ./test/sim

# fmt: every Go file of the tree, tracked or new, that exists.
fmt:
	@out=$$(git ls-files -co --exclude-standard -- '*.go' | while read -r f; do [ -f "$$f" ] && echo "$$f"; done | xargs -r gofmt -l); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet: fmt
	$(GO) vet ./...

STATICCHECK = $(shell $(GO) env GOPATH)/bin/staticcheck

lint: vet
	@[ -x $(STATICCHECK) ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

# fuzz: a short run of every FuzzXxx in every package.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg || exit 1; \
		done; \
	done

# demo: the whole story in namespaces it creates and removes (root).
demo: build
	scripts/deps.sh demo
	scripts/demo.sh

# image: the installer image of deploy/kubernetes/daemonset.yaml.
image: build
	scripts/image.sh

# docker-plugin: the managed (v2) plugin, built from a local directory.
docker-plugin:
	scripts/docker-plugin.sh

clean:
	rm -rf $(BIN)
