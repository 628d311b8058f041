# cryolab — the two set-up commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
LABEXT := src/cryolab/labextension/package.json

.PHONY: demo test lint typecheck docs unit lab bench install lock clean browser display system-deps extension

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Installs the pinned development environment and cryolab itself (editable).
$(STAMP): $(PY) pyproject.toml requirements/dev.lock $(LABEXT)
	$(PY) -m pip install --quiet -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	# what a wheel installs as data files (an editable install does not): the server extension on
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp jupyter-config/server-config/cryolab.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	touch $(STAMP)

install: $(STAMP)

# The JupyterLab extension (the run-graph panel, extension/), built into src/cryolab/labextension/
# (gitignored; a wheel carries it as share/jupyter/labextensions/cryolab) and linked into the venv
# as `jupyter labextension develop` does. Needs node >= 18 and npm; jupyter-builder comes from
# the lockfile.
$(LABEXT): $(PY) requirements/dev.lock $(wildcard extension/*.json extension/src/*.ts extension/style/*)
	$(PY) -m pip install --quiet -r requirements/dev.lock
	cd extension && npm ci --no-audit --no-fund && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build
	mkdir -p $(VENV)/share/jupyter/labextensions
	ln -sfn $(abspath $(dir $(LABEXT))) $(VENV)/share/jupyter/labextensions/cryolab
	touch $(LABEXT)

extension: $(LABEXT)

demo: $(STAMP)
	$(VENV)/bin/cryolab demo --path demo-project

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest

# The documentation site (docs/conf.py) into docs/_build/html: any warning, and any reference
# to something that does not exist (-n), fails the build.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

test: lint typecheck docs unit

# Debian's Chromium for the browser tests (as root; .ci/run calls it before `make test`; without
# it the browser tests skip, except under CI). Playwright drives it: no browser is downloaded.
browser:
	command -v chromium >/dev/null 2>&1 || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Xvfb and the X/GL libraries Qt needs, for the napari tests (as root; without them those tests
# skip, except under CI).
display:
	command -v Xvfb >/dev/null 2>&1 && ldconfig -p | grep -q libxcb-icccm.so.4 || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q xvfb \
		libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 \
		libxcb-render-util0 libxcb-shape0 libgl1-mesa-dri libegl1; }

# Everything outside Python that the tests use (.ci/run calls it before `make test`).
system-deps: browser display

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lab: $(STAMP)
	$(PY) -m pip install --quiet -e ".[jupyter]"
	$(VENV)/bin/jupyter lab

# Regenerates the lockfile from pyproject.toml (needs `uv`).
lock:
	uv pip compile pyproject.toml --extra dev --extra jupyter --extra napari --extra docs --python-version 3.10 -o requirements/dev.lock --no-header

clean:
	rm -rf $(VENV) demo-project build src/*.egg-info docs/_build docs/tutorials/*.ipynb
