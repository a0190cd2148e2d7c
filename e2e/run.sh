#!/usr/bin/env bash
# End-to-end suite on kind with fake GPUs: `make e2e` runs this.
#
# Creates a kind cluster of its own (never reuses one), gives its workers fake nvidia.com/gpu
# capacity and GPU Feature Discovery labels, builds and loads the operator and vLLM simulator
# images, installs the Helm chart with GPUPools matching the fake nodes, runs `pytest e2e -m e2e`
# and deletes the cluster (unless KEEP_CLUSTER=1). Every step that writes to a cluster first
# passes e2e/guard.py: the context must be kind-<name>, on loopback, carrying our marker.
#
# Environment:
#   E2E_CLUSTER_NAME  kind cluster name (default modeldeploy-e2e); must not exist yet
#   KEEP_CLUSTER=1    keep the cluster and print how to rerun the tests against it
#   E2E_WORKDIR       where the kubeconfig, values and logs go (default: a new temp dir)
#   LWS_MANIFEST      optional path/URL of a LeaderWorkerSet release manifest to install
#   PYTHON            interpreter with the project and its [test] extras (default python3)
#   PYTEST_ARGS       extra pytest arguments
#   E2E_POD_CPU_PER_GPU, E2E_POD_MEMORY_BASE_GIB  serving pods' requests (kind-sized defaults)
#   E2E_KEDA=0        skip installing KEDA and its HTTP add-on (the scale-from-zero test skips)
#   E2E_KEDA_VERSION, E2E_KEDA_HTTP_VERSION  their Helm chart versions (defaults: the versions
#                     whose CRDs tests/schemas vendors, KEDA 2.16.1 and the HTTP add-on 0.11.0)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLUSTER="${E2E_CLUSTER_NAME:-modeldeploy-e2e}"
CONTEXT="kind-${CLUSTER}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
PYTHON="${PYTHON:-python3}"
WORKDIR="${E2E_WORKDIR:-$(mktemp -d -t modeldeploy-e2e.XXXXXX)}"
KUBECONFIG_FILE="${WORKDIR}/kubeconfig"
OPERATOR_NAMESPACE="modeldeploy-system"
OPERATOR_REPO="localhost/modeldeploy-operator"
IMAGE_TAG="e2e"
SIM_IMAGE="localhost/modeldeploy-vllm-sim:e2e"
SIM_IMAGE_V2="localhost/modeldeploy-vllm-sim:e2e-v2"
CREATED=0
# Serving pods request CPU and memory per GPU sized for real GPU nodes (3 cores, 12 GiB per
# GPU); a kind worker on a 4-CPU runner holds up to 8 fake GPUs, so the suite asks for little.
POD_CPU_PER_GPU="${E2E_POD_CPU_PER_GPU:-0.1}"
POD_MEMORY_BASE_GIB="${E2E_POD_MEMORY_BASE_GIB:-1}"
KEDA="${E2E_KEDA:-1}"
KEDA_VERSION="${E2E_KEDA_VERSION:-2.16.1}"
KEDA_HTTP_VERSION="${E2E_KEDA_HTTP_VERSION:-0.11.0}"
KEDA_CHARTS="https://kedacore.github.io/charts"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e: %s\n' "$*" >&2; exit 1; }

kube() { kubectl --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT" "$@"; }

guard() {
  "$PYTHON" e2e/guard.py check --kubeconfig "$KUBECONFIG_FILE" --cluster "$CLUSTER" \
    --marker "$MARKER" "$@"
}

diagnostics() {
  [[ -f "$KUBECONFIG_FILE" ]] || return 0
  log "diagnostics (saved to ${WORKDIR}/diagnostics.txt)"
  {
    kube get nodes -o wide || true
    kube get pods -A -o wide || true
    kube get modeldeployments,gpupools -A -o yaml || true
    kube get events -A --sort-by=.lastTimestamp || true
    kube logs -n "$OPERATOR_NAMESPACE" -l app.kubernetes.io/name=modeldeploy --tail=500 || true
    kube get httpscaledobjects -A -o yaml 2>/dev/null || true
    kube logs -n keda -l app.kubernetes.io/component=interceptor --tail=200 2>/dev/null || true
  } >"${WORKDIR}/diagnostics.txt" 2>&1
  tail -n 100 "${WORKDIR}/diagnostics.txt" >&2 || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ $status -ne 0 ]]; then
    diagnostics
  fi
  if [[ $CREATED -eq 1 && $KEEP_CLUSTER != "1" ]]; then
    log "deleting kind cluster ${CLUSTER}"
    kind delete cluster --name "$CLUSTER" || true
  fi
  if [[ $KEEP_CLUSTER == "1" && $CREATED -eq 1 ]]; then
    log "kept cluster ${CLUSTER}; to rerun the tests: source ${WORKDIR}/env.sh && pytest e2e -m e2e"
  elif [[ -z ${E2E_WORKDIR:-} ]] && { [[ $status -eq 0 ]] || rmdir "$WORKDIR" 2>/dev/null; }; then
    rm -rf "$WORKDIR"  # passed, or failed before writing anything worth keeping
  else
    log "logs and kubeconfig kept in ${WORKDIR}"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in docker kind kubectl helm "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || die "needs ${tool} on PATH (e2e needs Docker and kind)"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (e2e needs Docker and kind)"
existing="$(kind get clusters 2>/dev/null || true)"
if grep -qx -- "$CLUSTER" <<<"$existing"; then
  die "a kind cluster named ${CLUSTER} already exists and was not created by this run;" \
    "delete it (kind delete cluster --name ${CLUSTER}) or set E2E_CLUSTER_NAME"
fi
MARKER="$("$PYTHON" e2e/guard.py new-marker)"
mkdir -p "$WORKDIR"

log "building images (before the cluster: a broken build fails fast)"
docker build -t "${OPERATOR_REPO}:${IMAGE_TAG}" .
docker build -t "$SIM_IMAGE" e2e/vllm-sim
docker tag "$SIM_IMAGE" "$SIM_IMAGE_V2"

log "creating kind cluster ${CLUSTER}"
# kind removes a half-created cluster itself; from here on the cluster is ours to delete.
kind create cluster --name "$CLUSTER" --config e2e/kind-config.yaml \
  --kubeconfig "$KUBECONFIG_FILE" --wait 180s
CREATED=1
guard --skip-marker
# `kind create --wait` waits for the control plane only: the workers carry the fake GPUs.
kube wait --for=condition=Ready nodes --all --timeout=180s
"$PYTHON" e2e/guard.py marker-manifest --marker "$MARKER" | kube apply -f -
guard

log "faking GPUs on the workers"
"$PYTHON" e2e/fake_gpu.py apply --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT"
kube get nodes -L e2e.modeldeploy.dev/gpu-shape,nvidia.com/gpu.product,nvidia.com/gpu.count

log "loading images into kind"
kind load docker-image --name "$CLUSTER" "${OPERATOR_REPO}:${IMAGE_TAG}" "$SIM_IMAGE" "$SIM_IMAGE_V2"

if [[ -n ${LWS_MANIFEST:-} ]]; then
  log "installing LeaderWorkerSet from ${LWS_MANIFEST}"
  guard
  kube apply --server-side -f "$LWS_MANIFEST"
  kube wait --for=condition=Established --timeout=120s crd/leaderworkersets.leaderworkerset.x-k8s.io
fi

if [[ $KEDA == "1" ]]; then
  # Before the operator: it discovers the add-on's API at start. The chart defaults (release
  # namespace keda, Service names keda-add-ons-http-*) are what the operator's defaults expect.
  log "installing KEDA ${KEDA_VERSION} and its HTTP add-on ${KEDA_HTTP_VERSION} (scale from zero)"
  guard
  helm upgrade --install keda keda --repo "$KEDA_CHARTS" --version "$KEDA_VERSION" \
    --kubeconfig "$KUBECONFIG_FILE" --kube-context "$CONTEXT" \
    --namespace keda --create-namespace --wait --timeout 5m
  guard
  helm upgrade --install http-add-on keda-add-ons-http --repo "$KEDA_CHARTS" \
    --version "$KEDA_HTTP_VERSION" --kubeconfig "$KUBECONFIG_FILE" --kube-context "$CONTEXT" \
    --namespace keda --wait --timeout 5m
fi

log "installing the chart"
"$PYTHON" e2e/fake_gpu.py values >"${WORKDIR}/values.yaml"
guard
helm upgrade --install modeldeploy charts/modeldeploy \
  --kubeconfig "$KUBECONFIG_FILE" --kube-context "$CONTEXT" \
  --namespace "$OPERATOR_NAMESPACE" --create-namespace \
  --values "${WORKDIR}/values.yaml" \
  --set image.repository="$OPERATOR_REPO" --set image.tag="$IMAGE_TAG" \
  --set image.pullPolicy=IfNotPresent \
  --set models.podResources.cpuPerGPU="$POD_CPU_PER_GPU" \
  --set models.podResources.memoryBaseGiB="$POD_MEMORY_BASE_GIB" \
  --set models.podResources.memoryPerGPUGiB=0 \
  --wait --timeout 5m
kube get gpupools -o wide

cat >"${WORKDIR}/env.sh" <<ENV
export KUBECONFIG='${KUBECONFIG_FILE}'
export MODELDEPLOY_E2E_CLUSTER='${CLUSTER}'
export MODELDEPLOY_E2E_MARKER='${MARKER}'
export MODELDEPLOY_E2E_SIM_IMAGE='${SIM_IMAGE}'
export MODELDEPLOY_E2E_SIM_IMAGE_V2='${SIM_IMAGE_V2}'
export MODELDEPLOY_E2E_OPERATOR_NAMESPACE='${OPERATOR_NAMESPACE}'
export MODELDEPLOY_E2E_WORKDIR='${WORKDIR}'
export MODELDEPLOY_E2E_KEDA_HTTP='${KEDA}'
# The cluster is up: from here a missing prerequisite fails the tests instead of skipping them.
export MODELDEPLOY_E2E_REQUIRED=1
ENV

log "running the e2e suite"
guard
# shellcheck source=/dev/null
source "${WORKDIR}/env.sh"
read -r -a extra <<<"${PYTEST_ARGS:-}"
# (the ${extra[@]+...} form keeps an empty array safe under `set -u` in bash < 4.4)
"$PYTHON" -m pytest e2e -m e2e -rs -v -p no:cacheprovider ${extra[@]+"${extra[@]}"}
