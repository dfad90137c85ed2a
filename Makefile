# sigforge: the two commands of the README are `make demo` and `make test`.
# `make install` also assembles Beam's Flink job server (Java + Maven, once, ~160 MB into .cache/; see
# engines/flink/pom.xml): run_configs/flink_local.yaml and tests/e2e/test_flink.py run on it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sigforge-installed
DEMO_OUT ?= demo_out
DEMO_N ?= 1200
export TF_CPP_MIN_LOG_LEVEL ?= 2
MVN ?= mvn
MVN_FLAGS ?=
FLINK_JOB_SERVER_DIR := .cache/flink-job-server
FLINK_JOB_SERVER := $(FLINK_JOB_SERVER_DIR)/beam-flink-job-server.jar

.PHONY: install engines demo test bench bench-science lint clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The launcher jar and its lib/ are built in a scratch folder and moved in whole: the jar exists only when the
# whole classpath does, so an interrupted fetch runs again.
$(FLINK_JOB_SERVER): engines/flink/pom.xml
	@command -v $(MVN) >/dev/null && command -v java >/dev/null || { \
	  echo "make engines: needs Maven and a Java 11+ runtime (e.g. apt-get install maven openjdk-17-jdk-headless)"; exit 1; }
	@echo "Fetching Beam's Flink job server with Maven into $(FLINK_JOB_SERVER_DIR) (once; ~160 MB)"
	rm -rf $(FLINK_JOB_SERVER_DIR).partial
	$(MVN) -B -q -Dstyle.color=never $(MVN_FLAGS) -f engines/flink/pom.xml package -Djobserver.dir=$(CURDIR)/$(FLINK_JOB_SERVER_DIR).partial
	rm -rf $(FLINK_JOB_SERVER_DIR) $(FLINK_JOB_SERVER_DIR).partial/build
	mv $(FLINK_JOB_SERVER_DIR).partial $(FLINK_JOB_SERVER_DIR)

engines: $(FLINK_JOB_SERVER)

install: $(STAMP) $(FLINK_JOB_SERVER)

demo: $(STAMP)
	$(PY) -m beam_pipelines.commands.demo --out $(DEMO_OUT) --n $(DEMO_N)

test: install
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# The search-grade science protocol (hours on 2 cores): 3 seeds of make demo and of the default config, CNN vs
# matched filter at FAP 1e-2/1e-3/1e-4 against a 20,000-sample noise-only background, glitch false-alarm rates.
bench-science: $(STAMP)
	$(PY) benchmarks/bench_science.py --workdir bench_science_out --results benchmarks/science.json

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(DEMO_OUT) bench_science_out .pytest_cache
