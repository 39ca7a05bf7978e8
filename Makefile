# geofm: `make demo` runs the main job, `make test` runs the tests; each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# These releases lie on the build machines' disk (pip on Python 3.11 takes them from there).
TORCH := torch==2.14.1 torchvision==0.29.1
LOCAL := -e '.[test]' -e plugins/prithvi -e plugins/smp_decoders -e plugins/upernet -e plugins/torchgeo -e plugins/galileo -e plugins/terramind -e plugins/clay \
         -e examples/geofm-plugin-example
STAMP := $(BIN)/.geofm-installed

.PHONY: setup demo test lint bench bench-peer clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml examples/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install $(TORCH) $(LOCAL)
	touch $@

setup: $(STAMP)

# Land cover of a real Landsat 7 scene: download, chips, geofm stats/fit/infer, a PNG.
demo: setup
	$(BIN)/python examples/demo/run_demo.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Idle OpenMP threads wait passively: spinning ones slow every other process on a busy
# 2-core machine (training steps measured 30x slower under load without this).
test: lint
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# The benchmarks (bench/run.py; --quick for a short run) beside TerraTorch, from its own
# venv (make bench-peer); without it the TerraTorch column stays empty, with a note.
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

PEER_VENV := .venv-terratorch
bench-peer:
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEER_VENV)/bin/python -m pip install $(TORCH) terratorch
	$(PEER_VENV)/bin/python -c "import importlib.metadata as m, terratorch; print('terratorch', m.version('terratorch'))"

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
