# Two commands set everything up: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test bench clean

# Reinstall only when the package metadata changes; the install is editable, so code edits need none.
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/pinpoint serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# Load comes from wrk (Debian's package), a C client that leaves the cores to the server.
bench: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/pinpoint bench --out docs/benchmarks.md

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
