# modeldeploy developer entry points. `make plan` and `make test` are the README quick start.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install plan test cluster lint typecheck imports unit bench crds e2e clean

# The project and its [test] extras in a local venv, refreshed when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv with the package and test tools

plan: install ## plan every example offline (no cluster, no network)
	$(BIN)/modeldeploy plan examples/*.yaml --offline

lint: install
	$(BIN)/ruff check operator tests bench e2e

typecheck: install
	$(BIN)/mypy

imports: install ## the pure core imports no kopf, Kubernetes client or network library
	$(BIN)/lint-imports

# The control-plane tier (tests/cluster) runs a real kube-apiserver, etcd, scheduler and
# controller-manager from KUBEBUILDER_ASSETS; when unset, ../shared/k8s/unpack provides them if
# it exists, else the tier skips with a message.
K8S_UNPACK ?= ../shared/k8s/unpack
ASSETS = $${KUBEBUILDER_ASSETS:-$$(if [ -x $(K8S_UNPACK) ]; then $(K8S_UNPACK); fi)}

# Lint, types, import contracts, then unit, property, integration, control-plane, chart and
# offline e2e checks. pytest's exit code 5 (no tests collected) counts as success.
test: lint typecheck imports
	KUBEBUILDER_ASSETS="$(ASSETS)" $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

cluster: install ## only the control-plane tier (tests/cluster)
	KUBEBUILDER_ASSETS="$(ASSETS)" $(PY) -m pytest tests/cluster $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

bench: install ## benchmarks; results are recorded in docs/PERFORMANCE.md
	$(PY) bench/plan_bench.py
	$(PY) bench/autoscale_bench.py
	$(PY) bench/reconcile_bench.py
	$(PY) bench/render_bench.py
	$(PY) bench/startup_bench.py
	$(PY) bench/validate_bench.py
	$(PY) bench/advice_bench.py

# CRDs, chart RBAC file, values schema, chart and kustomize copies, reference docs and the
# argocd-cm patch are generated from code; tests fail when a checked-in copy drifts.
crds: install ## regenerate crds/, charts/*/crds, manifests/base, docs/reference from code
	$(PY) -m modeldeploy.install.generate

# End-to-end on kind with fake GPUs (needs Docker, kind, kubectl, helm); see docs/testing.md.
e2e: install
	PYTHON=$(abspath $(PY)) bash e2e/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
