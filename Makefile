# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv, install the CPU build of torch first (a bare `torch` may pull a CUDA build
# of several GB), then aecodec itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install demo test lint clean proto

$(BIN)/codec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/codec

demo: install
	$(BIN)/codec demo --force

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) aecodec-demo .pytest_cache

# Regenerate the gRPC stubs beside aecodec/v1/codec.proto (a test fails when they are stale).
proto: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. aecodec/v1/codec.proto
