# The Makefile is medianet's CI contract: .ci/run calls `make test`, and the
# README tells users the same commands.

GO        ?= go
BIN       := bin
CMDS      := $(notdir $(wildcard cmd/*))
PKGS_UNIT  = $(shell $(GO) list ./... | grep -v '/test')
FUZZTIME  ?= 10s
export CGO_ENABLED ?= 0

.PHONY: all build deps test test-unit test-e2e bench fmt vet lint fuzz clean demo docker-plugin image

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		echo "go build ./cmd/$$c"; \
		$(GO) build -trimpath -o $(BIN)/$$c ./cmd/$$c || exit 1; \
	done

deps:
	scripts/deps.sh

# test: formatting and vet, unit tests (root-only ones run when root), then
# the end-to-end tests against real peers, one package at a time because
# they share dockerd, podman and iptables.
test: deps build vet test-unit test-e2e

test-unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(PKGS_UNIT)

test-e2e: build
	@if [ -n "$$($(GO) list ./test/... 2>/dev/null)" ]; then \
		MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 40m ./test/...; \
	fi

# bench: every benchmark, with iteration counts that make its figures
# meaningful; ratios against the reference plugins, Docker's macvlan
# driver and coturn are reported as metrics of the same run.
bench: build
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 5x -count 1 \
		./ipam/... ./macvlan/... ./natprobe/... ./dockerplugin/... ./test/cni ./test/ipam
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 2000x -count 1 ./test/etcd
	MEDIANET_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./test/natprobe ./test/docker

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
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
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
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
