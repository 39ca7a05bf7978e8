# geofm: `make demo` runs the main job, `make test` runs the tests; each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# These releases lie on the build machines' disk (pip on Python 3.11 takes them from there).
TORCH := torch==2.14.1 torchvision==0.29.1
LOCAL := -e '.[test]' -e plugins/prithvi -e plugins/smp_decoders -e plugins/upernet \
         -e examples/geofm-plugin-example
STAMP := $(BIN)/.geofm-installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml examples/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install $(TORCH) $(LOCAL)
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/geofm plugins
	$(BIN)/geofm list

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
