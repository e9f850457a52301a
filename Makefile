# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv, install the CPU build of torch first (a bare `torch` may pull a CUDA build
# of several GB), then aecodec itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# checkov pins dependencies that clash with aecodec's, so it gets an environment of its own.
CHECKOV ?= checkov==3.3.30
CHECKOV_VENV ?= .venv-checkov

.PHONY: install demo test lint scan clean proto

$(BIN)/codec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/codec

demo: install
	$(BIN)/codec demo --force

test: install scan
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q $(CHECKOV)

# Scan the Kubernetes manifests under deploy/ (tests/test_kubernetes.py validates them against the
# schemas and checks them against the image and the command line).
scan: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov -d deploy --framework kubernetes --quiet --compact --skip-download

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) aecodec-demo .pytest_cache

# Regenerate the gRPC stubs beside aecodec/v1/codec.proto (a test fails when they are stale).
proto: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. aecodec/v1/codec.proto
