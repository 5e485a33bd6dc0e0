# The two commands a new user runs (see README):
#   make demo   - set up, then train, export and verify the default model, with a summary
#   make test   - set up, then run the test suite
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf build runs .pytest_cache .hypothesis
