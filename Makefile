# infergate — `make help` lists the targets.

GO       ?= go
BIN      := bin/infergate
ORT_LIB  := lib/libonnxruntime.so.1
MODELS   ?= models
HTTP     ?= 127.0.0.1:8080
GRPC     ?= 127.0.0.1:8081
DATA     ?= data
PKGS     := ./...
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)

export INFERGATE_ORT_LIB ?= $(CURDIR)/$(ORT_LIB)

.PHONY: help setup build run test test-race soak fuzz bench lint alerts-check demo-models clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup: ## fetch Go modules and the ONNX Runtime library (idempotent)
	@$(GO) mod download
	@./scripts/setup-ort.sh

build: ## build bin/infergate
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/infergate

demo-models: build ## write the demo models (ctr, ranker) into $(MODELS)
	@./$(BIN) demo-models --out $(MODELS)

run: setup demo-models ## set everything up, then serve the demo models on $(HTTP), and over gRPC on $(GRPC) (GRPC= for none)
	@echo
	@echo "try:  curl -s -X POST http://$(HTTP)/v2/models/ctr/infer -H 'Content-Type: application/json' \\"
	@echo "        -d '{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[$$(seq -s, 64 | sed 's/[0-9]\+/0.5/g')]}]}'"
	@echo
	./$(BIN) serve --http $(HTTP) $(if $(GRPC),--grpc $(GRPC)) --models $(MODELS) --data $(DATA) || \
		{ echo "(make run: HTTP=host:port and GRPC=host:port serve elsewhere, GRPC= serves no gRPC)"; exit 1; }

# SIMULATIONS are the trainer's seeded statistical simulations, which skip
# themselves under the race detector (minutes there, seconds without).
SIMULATIONS := ^TestCanary(ConfidentModelAgainstItself|OverconfidentCandidate|FindsFewerMispredictions|EqualArmsAtRareMispredictions)$$

test: setup ## run all tests with the race detector (what CI runs), then the trainer's simulations without it
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 -run '$(SIMULATIONS)' ./trainer/

test-race: test ## alias of test: the race detector is always on

soak: setup ## kill the leader of a 3-node cluster under load SOAK_ROUNDS times (default 10)
	INFERGATE_SOAK_ROUNDS=$${SOAK_ROUNDS:-10} $(GO) test -count=1 -timeout 30m -run '^TestClusterFailover$$' -v ./cmd/infergate

fuzz: setup ## run each fuzz target briefly (FUZZTIME, default 20s)
	@for t in oip:FuzzDecodeRequest oip:FuzzDecodeResponse oip:FuzzDecodeModelInferRequest oip:FuzzStreamDecoders oip:FuzzDecodePredictRequest oip:FuzzDecodeTraceSettingRequest oip:FuzzDecodeLogSettingsRequest gateway:FuzzInferHandler gateway:FuzzPredictHandler gateway:FuzzGRPCModelInfer gateway:FuzzRawRequest gateway:FuzzDecompress gateway:FuzzFeedback gateway/route:FuzzExperiment registry:FuzzParseModelConfigText registry:FuzzParseModelConfig trafficlog:FuzzDecode trafficlog:FuzzSegment registry/blobs:FuzzPutExpectVerify cluster/fsm:FuzzApply cluster/fsm:FuzzRestore cluster:FuzzReadBackup; do \
		$(GO) test -run "^$$" -fuzz "^$${t#*:}$$" -fuzztime $${FUZZTIME:-20s} -fuzzminimizetime 2s ./$${t%%:*}/ || exit 1; \
	done

bench: setup ## run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# ALERTS are the alerting rules and their promtool unit tests; promtool
# comes with Prometheus. Not part of test: CI machines lack promtool, and
# gateway's TestAlertRules checks the rules' names against /metrics there.
ALERTS := deploy/prometheus/infergate-alerts.yml
ALERTS_TEST := deploy/prometheus/infergate-alerts_test.yml

alerts-check: ## check the Prometheus alerting rules and run their tests with promtool (not part of test)
	@command -v promtool >/dev/null 2>&1 || { echo "alerts-check: promtool not found; install it: apt-get install prometheus"; exit 1; }
	promtool check rules $(ALERTS)
	promtool test rules $(ALERTS_TEST)

clean: build ## remove build outputs and the demo models (keeps lib/, data/ and any other model in $(MODELS), a ctr or ranker of your own too)
	@./$(BIN) demo-models --out $(MODELS) --remove
	rm -rf bin
