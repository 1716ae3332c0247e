# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_LINK_MODE ?= copy

.PHONY: run test lint typecheck pytest sync bootstrap

bootstrap:  ## install uv if missing, then the locked environment in .venv
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet

run: bootstrap  ## serve the app on PORT (8000) with embedded defaults for what is not configured
	$(UV) run --frozen python -m app.devstack

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: bootstrap
	$(UV) run --frozen mypy

pytest: bootstrap
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test: lint typecheck pytest  ## every test: lint, type check, unit, integration and browser tests
