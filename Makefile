# The two commands a user needs: `make demo` and `make test`. Each creates .venv
# and installs the pinned requirements on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 3
export CUDA_VISIBLE_DEVICES :=

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

test: venv
	$(PY) -m pytest -n 2 --durations=15

demo: venv
	$(PY) -m mobileseg.zoo --input_size 360x480 --num_classes 12

clean:
	rm -rf $(VENV) .pytest_cache
