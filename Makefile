# dietsnn: `make sim` (the main job) and `make test` (all tests). Both install into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Empty: dietsnn sim's defaults (dietsnn.sim.accel_runner: cifar10, 4 images; $SIM or verilator).
SIM    ?=
IMAGES ?=
MODEL  ?=
WAVES  ?=
# Options of bench/figures.py for `make figures` (default: the cheap figures), e.g.
# FIGURES="--group pnr", FIGURES="--only neuron-synth", FIGURES=--all, FIGURES=--list.
FIGURES ?=

.PHONY: install sim test lint bench figures clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 -c constraints.txt
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e . -c constraints.txt
	touch $(STAMP)

sim: install
	$(VENV)/bin/dietsnn sim $(if $(MODEL),--model $(MODEL)) $(if $(IMAGES),--images $(IMAGES)) \
	  $(if $(SIM),--simulator $(SIM)) $(if $(filter 1 yes true on,$(WAVES)),--waves)

test: install
	$(PY) -m pytest -q -ra

lint: install
	$(VENV)/bin/ruff check .

figures: install
	$(PY) bench/figures.py $(FIGURES)

clean:
	rm -rf build sim_build .pytest_cache
