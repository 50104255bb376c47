# authzd: two commands.
#   make run    start the quickstart server on 127.0.0.1:9191
#   make test   vet, lint the API, check gen/ is fresh, run every test with -race

GO      ?= go
BUF     := $(GO) tool -modfile=tools/go.mod buf
CONFIG  ?= examples/quickstart/authzd.yaml

.PHONY: run test generate lint check-generated vet unit bench build

run:
	$(GO) run ./cmd/authzd serve --config $(CONFIG)

build:
	$(GO) build -o bin/authzd ./cmd/authzd

test: vet lint check-generated unit

vet:
	$(GO) vet ./...

lint:
	$(BUF) lint

generate:
	$(BUF) generate

# Regenerate into a scratch copy and compare, so a stale gen/ fails the build.
check-generated:
	@scripts/check-generated.sh

unit:
	scripts/test.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
