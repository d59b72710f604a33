# overlay-sdk: `make demo` and `make test` each set up what they need, then run.
# Only Python (3.11+), node (the widgets' JS tests) and apt are assumed; everything else is
# installed into .venv here (or with apt: postgresql, chromium).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888

# The JupyterLab extension (jupyter_ext/, TypeScript): `pip install -e` builds it once (the
# hatch-jupyter-builder hook, a development build); $(LABEXT) rebuilds it, as the production
# bundle a release ships (`build:prod`: minified, third-party licenses, no source maps), when
# its sources change or the bundle there is not a production one. So a wheel built after
# `make` (hatch reuses overlay_sdk/labextension) ships what a release would. $(LABEXT) is a
# file only production builds write (a development build wipes static/). jlpm and
# jupyter-builder come with the venv's jupyterlab, hence PATH.
EXT         := jupyter_ext
EXT_SOURCES := $(wildcard $(EXT)/src/*.ts $(EXT)/style/*.css $(EXT)/style/*.js \
               $(EXT)/style/icons/*.svg $(EXT)/schema/*.json) \
               $(EXT)/package.json $(EXT)/yarn.lock $(EXT)/tsconfig.json
LABEXT      := overlay_sdk/labextension/static/third-party-licenses.json
JLPM        := PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/jlpm
# what `jupyter labextension develop --overwrite .` does: link the build output into the
# venv, so JupyterLab serves every rebuild (an editable install only copies it once)
LABEXT_DEVELOP = $(BIN)/python -c "from jupyter_builder.federated_extensions import \
	develop_labextension as d; d('overlay_sdk/labextension', symlink=True, overwrite=True, \
	sys_prefix=True, destination='@overlay-sdk/jupyterlab-ext')"

.PHONY: demo test lint pytest labextension postgres chromium bench crd clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(LABEXT_DEVELOP)
	@touch $(STAMP)

# jlpm install is a no-op (~1 s) unless package.json or yarn.lock changed; the build ~5 s
$(LABEXT): $(EXT_SOURCES) | $(STAMP)
	cd $(EXT) && $(JLPM) install && $(JLPM) build:prod
	$(LABEXT_DEVELOP)
	@touch $@

labextension: $(LABEXT)  ## build the JupyterLab extension (jupyter_ext/) when its sources changed

demo: $(STAMP) $(LABEXT)  ## start JupyterLab on examples/ with the embedded control plane (DEMO_SMOKE=1: check and exit)
	$(BIN)/python -m overlay_sdk.demo --port $(PORT)

test: $(STAMP) $(LABEXT) lint pytest  ## run every test (lint, types, pytest, notebooks under nbval)

lint: $(STAMP) $(LABEXT)  ## ruff, mypy --strict, import layers, CRD up to date, tsc
	$(BIN)/ruff check overlay_sdk tests benchmarks examples/legacy_app
	cd $(EXT) && $(JLPM) check
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m overlay_sdk.crd --check

pytest: $(STAMP) $(LABEXT) postgres chromium
	node --test widgets/test/
	cd $(EXT) && $(JLPM) test
	OVERLAY_HOME=$$(mktemp -d) $(BIN)/python -m pytest tests examples --nbval-lax --durations=20

# The telemetry tests start a throwaway PostgreSQL cluster from Debian's binaries; without
# them those tests are skipped (and fail when CI=true). sudo -n: never stop for a password.
postgres:  ## install Debian's postgresql when no initdb is found (for the telemetry tests)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		command -v apt-get >/dev/null && { \
		APT="$$( [ "$$(id -u)" = 0 ] || echo sudo -n ) env DEBIAN_FRONTEND=noninteractive apt-get -y -q"; \
		$$APT install postgresql >/dev/null 2>&1 || \
		{ $$APT update >/dev/null 2>&1 && $$APT install postgresql >/dev/null 2>&1; }; }; } || \
		echo "PostgreSQL could not be installed: the PostgreSQL telemetry tests will be skipped"

# The real-browser tests (tests/browser) drive Debian's chromium (never `playwright install`);
# without it they are skipped (and fail when CI=true). sudo -n: never stop for a password.
chromium:  ## install Debian's chromium when none is found (for the real-browser tests)
	@command -v chromium >/dev/null || { \
		command -v apt-get >/dev/null && { \
		APT="$$( [ "$$(id -u)" = 0 ] || echo sudo -n ) env DEBIAN_FRONTEND=noninteractive apt-get -y -q"; \
		$$APT install chromium >/dev/null 2>&1 || \
		{ $$APT update >/dev/null 2>&1 && $$APT install chromium >/dev/null 2>&1; }; }; } || \
		echo "chromium could not be installed: the real-browser tests (tests/browser) will be skipped"

bench: $(STAMP)  ## run the benchmarks in benchmarks/ (figures go to BENCHMARKS.md)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q wrk >/dev/null; } || \
		echo "wrk is not installed: the gateway's latency and throughput figures are skipped"
	$(BIN)/python benchmarks/run.py

crd: $(STAMP)  ## regenerate deploy/crds/aioverlay.yaml from overlay_sdk/spec.py
	$(BIN)/python -m overlay_sdk.crd

clean:  ## remove the virtualenv and caches (keeps .overlay/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf $(EXT)/node_modules $(EXT)/lib $(EXT)/build-test $(EXT)/tsconfig.tsbuildinfo \
		overlay_sdk/labextension
