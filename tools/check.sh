#!/usr/bin/env bash
# The project's gates, in the order that fails fastest: lint, types, then the tests with the
# core's 100% branch-coverage gate (fail_under in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy --strict src
python3 -m pytest --cov=roomwire --cov-branch --cov-report=term-missing:skip-covered "$@"
