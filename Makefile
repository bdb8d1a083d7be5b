# Set-up is part of every target: a fresh clone needs only `make test` or `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes first and pinned: this workplace serves these builds from local disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv test demo bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/s3t demo --out demo

bench: venv
	$(BIN)/python benchmarks/bench_frontend.py

clean:
	rm -rf $(VENV) .pytest_cache
