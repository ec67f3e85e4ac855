# dbfw: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint unit integration demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest tests

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

demo: $(STAMP)
	$(BIN)/dbfw up

bench: $(STAMP)
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
	  (apt-get install -y pgbouncer >/dev/null 2>&1 || echo "pgbouncer not installed: its column will read unavailable")
	$(BIN)/python benchmarks/classify_bench.py
	$(BIN)/python benchmarks/masking_bench.py
	$(BIN)/python benchmarks/recording_bench.py
	$(BIN)/python benchmarks/run.py
	@command -v sysbench >/dev/null || (apt-get install -y sysbench >/dev/null 2>&1 || \
	  echo "sysbench not installed: the MySQL benchmark is skipped")
	$(BIN)/python benchmarks/sysbench_mysql.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
