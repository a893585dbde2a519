# The two commands: `make up` runs the whole system, `make test` runs every check.
# Both create the virtual environment on first use; only Python 3.11+ is needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: up test lint unit install bench docs clean operations containers screenshots

up: $(STAMP)
	$(BIN)/minqing up

test: $(STAMP) lint
	$(BIN)/pytest -q -n 4 --dist worksteal --durations=12

lint: $(STAMP)
	$(BIN)/ruff check minqing services shared tests bench docs/hooks
	$(BIN)/ruff format --check minqing services shared tests bench docs/hooks
	$(BIN)/mypy -p minqing

# The operations tests (docs/operator/operations.md): a three-node NATS cluster, replicas,
# a partition, rolling restarts, a restore drill; real servers for minutes, one at a time.
# CI runs them after `make test`.
operations: $(STAMP)
	MINQING_OPERATIONS_TESTS=1 $(BIN)/pytest -q -m operations --durations=0

unit: $(STAMP)
	$(BIN)/pytest -q tests/*/unit

# The container tests (docs/operator/containers.md): the images built with podman (on a
# Debian base made with debootstrap the first time) and deploy/compose.yaml run round the
# loop; the Kubernetes base played with `podman kube play`. As root, with podman, runc and
# debootstrap installed; minutes, one at a time; never part of `make test`.
containers: $(STAMP)
	MINQING_CONTAINER_TESTS=1 $(BIN)/pytest -q -m containers tests/deploy --durations=0

install: $(STAMP)

# The README's tour of the people's pages (docs/images/tour/), taken by the browser tests
# themselves (tests/support/tour.py lists which screens): run after changing a page.
screenshots: $(STAMP)
	rm -rf docs/images/tour
	MINQING_TOUR_DIR=docs/images/tour $(BIN)/pytest -q tests/e2e/test_workbench.py \
		tests/e2e/test_visit_page.py tests/e2e/test_resident_pages.py tests/e2e/test_desk.py \
		tests/e2e/test_desk_report.py

# The benchmark (docs/developer/benchmarks.md): minutes of load on this machine, never part of `make test`.
# Options after ARGS=, e.g. make bench ARGS='--quick' or ARGS='--only projection --profile'.
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $@

# The documentation site (docs/, mkdocs.yml) into site/; warnings are errors (a broken link
# fails). The HTTP and event references are generated from the code at build time.
DOCS_STAMP := $(VENV)/.docs-installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

docs: $(STAMP) $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	rm -f $(VENV)/.docs-installed-*
	touch $@

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
