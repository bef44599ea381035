# The two commands a user needs: `make demo` and `make test`. Each creates .venv
# and installs the pinned requirements on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 3
export CUDA_VISIBLE_DEVICES :=

.PHONY: demo test venv system_packages arm_root clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

test: venv system_packages
	$(PY) -m pytest -n 2 --durations=15

system_packages:
	bash .ci/system_packages.sh

# The arm64 root that `python -m mobileseg.bench --arm_emulated` runs LiteRT's aarch64 build in under
# qemu-user (needs root, the Debian mirror and PyPI; ~1.5 min once, then a no-op). ARM_ROOT= puts it
# elsewhere than $$MOBILESEG_ARM_ROOT or ~/.cache/mobileseg/arm64-root. `make test` makes it too.
arm_root: venv
	PY=$(PY) bash .ci/arm_root.sh $(ARM_ROOT)

# The whole flow on 64 synthetic street scenes and the demo space, in minutes: latency table,
# supernet, NSGA-II search, training, QAT int8 export, LiteRT benchmark (mobileseg/pipeline.py).
# The summary at the end says where pareto.png and the .tflite are. Run again, it skips the steps
# already done in $(DEMO_DIR); delete that folder to start over.
DEMO_DIR ?= runs/demo
demo: venv
	$(PY) -m mobileseg.pipeline --space search_space/demo.yaml --data synthetic:64 --run_dir $(DEMO_DIR) \
		--target_latency_ms 0.05 --train_epochs 30 --qat_epochs 2

clean:
	rm -rf $(VENV) .pytest_cache
