# Every target sets itself up: a virtual environment in .venv, then an editable install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= all

.PHONY: install demo test check lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sessionrec demo

# The Spark tests need the spark extra (a large wheel, kept out of "all"): added here once.
SPARK_STAMP := $(VENV)/.installed-spark

$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),spark]'
	touch $(SPARK_STAMP)

# One BLAS/OpenMP thread per test process: the tests use tiny matrices, and on a shared
# 2-core machine extra threads only wait for each other (it slowed tiny matmuls ~1000x).
test: $(STAMP) $(SPARK_STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q

# On the Spark stamp: mypy checks data/spark.py against PySpark's own types (the install is
# once, and `make test` needs it anyway).
lint: $(SPARK_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

check: lint test

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# A short, representative run (about 10 minutes on 2 cores): one script of each group of
# benchmarks/ with small settings, run as modules from the repository root. The full runs
# and the commands of every figure are in BENCHMARKS.md.
BENCH_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
bench: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m benchmarks.accuracy.bench_baselines --datasets diginetica
	$(BENCH_ENV) $(BIN)/python -m benchmarks.speed.bench_data_scale --events 2000000
	$(BENCH_ENV) $(BIN)/python -m benchmarks.service.bench_service --stores memory \
		--rates 250 --warmup 1 --duration 5
	$(BENCH_ENV) $(BIN)/python -m benchmarks.peers.recbole_side_by_side ours --model srgnn \
		--epochs 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
