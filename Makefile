# Two commands set everything up: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROTO_PACKAGES := 'tensorflow-serving-api>=2.15,<3' 'kserve>=0.13,<0.22'

.PHONY: serve test fuzz bench clean vendor-ort

# gRPC's published protos are installed without their dependencies (docs/api.md, "gRPC"):
# tensorflow-serving-api requires `tensorflow`, a second TensorFlow beside tensorflow-cpu; kserve brings
# a web stack Pinpoint never runs.
# Reinstall only when the package metadata changes; the install is editable, so code edits need none.
$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	@echo "Installing Pinpoint and its dependencies into $(VENV) (TensorFlow is large: minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --progress-bar on pip
	$(BIN)/pip install --progress-bar on -e '.[test]'
	$(BIN)/pip install --progress-bar on --no-deps $(PROTO_PACKAGES)
	touch $@

# Prints one line once every model is ready: pinpoint ready on http://127.0.0.1:8080/: models ...
serve: $(VENV)/.installed
	$(BIN)/pinpoint serve

# Lint first (pyproject.toml's [tool.ruff]): seconds, and it names the line; then the suite.
test: $(VENV)/.installed
	$(BIN)/ruff check service tests
	$(BIN)/python -m pytest -q

# The fuzz suite at 25 times its default size: 55,000 generated requests over every route (tests/test_fuzz.py).
FUZZ_SCALE ?= 25
fuzz: $(VENV)/.installed
	FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -q tests/test_fuzz.py

# Load comes from wrk (Debian's package), a C client that leaves the cores to the server. The peers
# (LitServe, BentoML, FastAPI) are installed from PyPI into their own .bench-venv/ first (~30 s once).
bench: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m service.tools.bench.peers --setup-only
	$(BIN)/pinpoint bench --out docs/benchmarks.md

# The browser runtime is committed (static/vendor/onnxruntime-web/README.md); this refreshes it from npm.
ORT_VERSION ?= 1.30.0
vendor-ort:
	rm -rf .ort && mkdir .ort && cd .ort && npm pack --silent onnxruntime-web@$(ORT_VERSION) && tar xzf onnxruntime-web-*.tgz
	cp .ort/package/dist/ort.wasm.min.js .ort/package/dist/ort-wasm-simd-threaded.mjs static/vendor/onnxruntime-web/
	gzip -9 -n -c .ort/package/dist/ort-wasm-simd-threaded.wasm > static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm.gz
	rm -rf .ort

clean:
	rm -rf $(VENV) .bench-venv *.egg-info .pytest_cache
