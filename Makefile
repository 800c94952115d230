# optmpp: `make run` installs into .venv and runs the default study; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUDY ?= studies/default.toml
WORKERS ?= 2

# The shared data directory beside the project, when there is one.
ifneq ($(wildcard ../shared/data/HDPE_LG_Plant_Data.csv),)
export OPTMPP_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install run test test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/optmpp run $(STUDY) --workers $(WORKERS)

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

clean:
	rm -rf runs .pytest_cache
