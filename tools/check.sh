#!/usr/bin/env bash
# The project's gates, in the order that fails fastest: lint, types, then the tests with the
# core's 100% branch-coverage gate (fail_under in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy --strict src
python3 -m mypy --strict tools/mkdocs_hooks.py
python3 -m mypy --strict bindings/anyio/src/roomwire_anyio bindings/asyncio/src/roomwire_asyncio \
    bindings/trio/src/roomwire_trio bindings/anyio/src/pytest_roomwire.py examples
# The documentation site: broken links, bad references and docstring errors fail the build.
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet
# The TypeScript client: its own tests (vectors, strict CBOR, the API), and the bundle the
# browser test (tests/browser) loads.
(cd bindings/typescript && npm ci --no-audit --no-fund && npm run build && npm test)
python3 -m pytest --cov=roomwire --cov-branch --cov-report=term-missing:skip-covered "$@"
# The examples are part of the product: both runtimes must run them.
python3 -X dev -W error examples/alice_and_bob.py --runtime asyncio
python3 -X dev -W error examples/alice_and_bob.py --runtime trio
python3 -X dev -W error examples/moobius_service.py --runtime asyncio
python3 -X dev -W error examples/moobius_service.py --runtime trio
