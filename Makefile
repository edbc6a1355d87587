# The two commands a newcomer needs: `make demo` and `make test`.
# Both create (or reuse) .venv and install the project into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-faults proto clean config-reference

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first time: about three minutes)"
	@# Headless Chromium renders the HTML report in a test; installed when this machine can.
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "  installing chromium with apt-get (the HTML report's browser test)" && \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1; } || \
		echo "  chromium not installed: the HTML report's browser test will be skipped"
	@# iproute2 (`ip netns`) and systemd-analyze: the multi-host deployment test and the unit check.
	@command -v ip >/dev/null 2>&1 && command -v systemd-analyze >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "  installing iproute2 and systemd with apt-get (the deployment tests)" && \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 systemd) >/dev/null 2>&1; } || \
		echo "  iproute2/systemd not installed: the network-namespace and systemd-analyze tests will be skipped"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "  installing the project and its Python packages into $(VENV) (pip)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "  ready: $(BIN)/dedup"

demo: $(STAMP)
	$(BIN)/dedup demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Faults, attacks and bad input at length (RELIABILITY.md): 50 SIGKILLs of the coordinator during
# intake, 10 restarts and 10 stops of a PostgreSQL server under it, and long fuzzing runs;
# `make test` runs a slice of each. Bounded to about 15 minutes.
test-faults: $(STAMP)
	DEDUP_FAULT_KILLS=50 DEDUP_FUZZ_EXAMPLES=1000 DEDUP_PG_RESTARTS=10 timeout 1800 $(BIN)/python -m pytest -o timeout=1500 \
		tests/test_faults.py tests/test_storage_faults.py tests/test_attacks.py tests/test_fuzz.py -s -q

# Regenerate deploy/CONFIGURATION.md from the settings models (a test fails if it drifts).
config-reference: $(STAMP)
	$(BIN)/dedup config reference --out deploy/CONFIGURATION.md

# Regenerate dedup/v1 from proto/ (the stubs are committed; a test fails if they drift).
proto: $(STAMP)
	$(BIN)/python proto/generate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Benchmarks (bench/README.md). Their extra packages (bench/requirements.txt) go into .venv first.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) bench/requirements.txt bench/requirements-coordinator.txt
	sh bench/install.sh $(BIN)/python bench/requirements.txt bench/requirements-coordinator.txt
	touch $(BENCH_STAMP)

.PHONY: bench-accuracy bench-hash bench-coordinator bench-audit bench-load bench-partition bench-check

bench-accuracy: $(BENCH_STAMP)
	$(BIN)/python -m bench.accuracy

bench-hash: $(BENCH_STAMP)
	$(BIN)/python -m bench.hashspeed

bench-coordinator: $(BENCH_STAMP)
	$(BIN)/python -m bench.coordinator

# N nodes (2, 8, 32) pushing at once for a bounded time: bench/results/load.json.
bench-load: $(STAMP)
	$(BIN)/python -m bench.load

# Audit of a generated 10^6-entry export (cached under bench/.cache/): bench/results/audit.json.
bench-audit: $(STAMP)
	$(BIN)/python -m bench.audit

# The candidate index split across 1, 2 and 4 worker processes, and the log's append rate
# (SPEC 12; about 15 minutes): bench/results/partition.json.
bench-partition: $(STAMP)
	$(BIN)/python -m bench.partition

# Which results files measured code that has changed since (bench/README.md); runs nothing else.
bench-check: $(STAMP)
	$(BIN)/python -m bench.check
