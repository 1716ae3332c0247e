# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
ifeq ($(origin UV), undefined)
UV := $(shell sh scripts/ensure-uv.sh)
endif
export UV_LINK_MODE ?= copy

.PHONY: run serve test lint typecheck pytest bootstrap screenshots translations messages

bootstrap:  ## the locked environment in .venv (uv itself is installed by scripts/ensure-uv.sh if missing)
	@$(UV) sync --frozen --quiet

# Pages in four languages (README "Languages"): the compiled catalogs (.mo) are built, never committed.
translations: bootstrap  ## compile app/translations/*/LC_MESSAGES/messages.po to .mo
	@$(UV) run --frozen pybabel -q compile -d app/translations

messages: bootstrap  ## extract the marked strings and merge them into every language's catalog
	$(UV) run --frozen python -m babel.messages.frontend extract -F babel.cfg -k N_ --no-location --sort-output -o app/translations/messages.pot .
	$(UV) run --frozen pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date

run: bootstrap translations  ## serve the app on PORT (8000) with embedded defaults for what is not configured
	$(UV) run --frozen python -m app.devstack

serve: bootstrap translations  ## production: migrations, then WEB_CONCURRENCY processes under ASGI_SERVER (README "Deploying")
	scripts/serve

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: bootstrap
	$(UV) run --frozen mypy

pytest: bootstrap translations
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test: lint typecheck pytest  ## every test: lint, type check, unit, integration and browser tests

screenshots: bootstrap translations  ## re-take the README's screenshots with the browser suite and copy them to docs/screenshots/
	$(UV) run --frozen pytest e2e -p no:cacheprovider
	mkdir -p docs/screenshots && cp test-results/screenshots/*.png docs/screenshots/
