#!/usr/bin/env bash
# GPU benchmarks (see bench/gpu.py): run on a machine with a CUDA GPU, from the repo root
# or anywhere; PYTHON picks the interpreter that has geofm installed (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/gpu.py "$@"
