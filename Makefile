# optmpp: `make run` installs into .venv and runs the default study; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUDY ?= studies/hdpe-mi-hyperband.toml
WORKERS ?= 2

# The shared data directory beside the project, when there is one.
ifneq ($(wildcard ../shared/data/HDPE_LG_Plant_Data.csv),)
export OPTMPP_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install run test test-fast bench browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Fetches the data first when the data directory lacks it (checksum-verified), tunes the study
# with $(WORKERS) workers on the embedded SQLite storage, then retrains and tests the best model.
run: $(STAMP)
	$(BIN)/optmpp data fetch -q
	$(BIN)/optmpp run $(STUDY) --workers $(WORKERS)
	$(BIN)/optmpp best $(STUDY)

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

# Benchmarks (figures printed, nothing asserted): optmpp vs KerasTuner, per-trial overhead,
# memory and scale. keras-tuner and tensorboard are installed for them only.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/vs_kerastuner.py --case mi --seeds 3
	$(BIN)/python benchmarks/overhead.py

# Debian's Chromium and ChromeDriver for the dashboard's browser test (needs root, or sudo).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then echo "chromium and chromedriver present"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi

clean:
	rm -rf runs .pytest_cache
