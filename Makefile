# sigforge: the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sigforge-installed
DEMO_OUT ?= demo_out
DEMO_N ?= 1200
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test bench bench-science lint clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m beam_pipelines.commands.demo --out $(DEMO_OUT) --n $(DEMO_N)

test: $(STAMP)
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
