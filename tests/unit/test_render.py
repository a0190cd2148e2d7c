"""Renderer behaviour: what each object carries, and what a spec may not change."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tests.unit.render_cases import A10G, H100, deepseek_v3, llama_8b, llama_70b, plan, with_spec

from modeldeploy.errors import InvalidSpec
from modeldeploy.render import PlanNotRenderable, RenderOptions, RolloutInputs, pod_template_hash, render_objects
from modeldeploy.render.context import HASH_ANNOTATION, LEADER_SCRIPT, WORKER_SCRIPT
from modeldeploy.render.sizes import STARTUP_PROBE_BACKSTOP_SECONDS, sizing

Obj = dict[str, Any]


def by_kind(objects: list[Obj]) -> dict[str, Obj]:
    out = {o["kind"]: o for o in objects}
    assert len(out) == len(objects), "one object per kind"
    return out


def pod_spec(workload: Obj, role: str = "leaderTemplate") -> Obj:
    if workload["kind"] == "Deployment":
        return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return workload["spec"]["leaderWorkerTemplate"][role]["spec"]  # type: ignore[no-any-return]


def container(workload: Obj, role: str = "leaderTemplate") -> Obj:
    containers = pod_spec(workload, role)["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def flag(args: list[str], name: str) -> str | None:
    """The value after `name` in argv (None if absent; '' for a valueless flag)."""
    if name not in args:
        return None
    i = args.index(name)
    assert args.count(name) == 1, f"{name} appears twice"
    nxt = args[i + 1] if i + 1 < len(args) else ""
    return "" if nxt.startswith("--") else nxt


# --- single node: Deployment -------------------------------------------------------------------

def test_single_node_plan_renders_deployment_service_in_order() -> None:
    m, p, pool = llama_8b()
    objects = render_objects(m, p, pool)
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    assert all(o["metadata"]["namespace"] == "models" for o in objects)
    assert [o["metadata"]["name"] for o in objects] == ["llama-3-1-8b", "llama-3-1-8b"]


def test_vllm_args_follow_the_plan_with_model_positional() -> None:
    m, p, pool = llama_70b()
    c = container(render_objects(m, p, pool)[1])
    assert c["command"] == ["vllm", "serve"]
    args = c["args"]
    assert args[0] == "meta-llama/Llama-3.3-70B-Instruct"
    expected = {
        "--served-model-name": "meta-llama/Llama-3.3-70B-Instruct", "--revision": "6f6073b",
        "--tensor-parallel-size": "4", "--pipeline-parallel-size": "1", "--max-model-len": "32768",
        "--max-num-seqs": "16", "--max-num-batched-tokens": "8192", "--gpu-memory-utilization": "0.9",
        "--dtype": "auto", "--kv-cache-dtype": "auto", "--port": "8000",
    }
    for name, value in expected.items():
        assert flag(args, name) == value, name
    assert "--model" not in args and "--quantization" not in args
    assert "--enable-expert-parallel" not in args and "--distributed-executor-backend" not in args
    # extraArgs last, in order, one argv element each
    assert args[-3:] == ["--enable-prefix-caching", "--max-log-len", "200"]


def test_optional_flags_only_when_the_plan_sets_them() -> None:
    m, p, pool = llama_8b()
    args = container(render_objects(m, p, pool)[0])["args"]
    assert "--max-num-seqs" not in args and "--revision" not in args
    p2 = p.model_copy(update={"quantization": "fp8", "online_quantization": True, "kv_cache_dtype": "fp8",
                              "max_num_batched_tokens": None})
    args2 = container(render_objects(m, p2, pool)[0])["args"]
    assert flag(args2, "--quantization") == "fp8" and flag(args2, "--kv-cache-dtype") == "fp8"
    assert "--max-num-batched-tokens" not in args2
    # A pre-quantized checkpoint (the plan names its method): vLLM reads it from the config and
    # picks the fastest kernel (gptq_marlin over gptq); --quantization would pin the slower one.
    for stored in ("none", "gptq", "fp8"):
        p3 = p.model_copy(update={"quantization": stored})
        assert "--quantization" not in container(render_objects(m, p3, pool)[0])["args"]


def test_gpus_node_selector_tolerations_and_resources() -> None:
    m, p, pool = llama_70b()
    workload = render_objects(m, p, pool)[1]
    spec, c = pod_spec(workload), container(workload)
    assert c["resources"]["requests"]["nvidia.com/gpu"] == "4" == c["resources"]["limits"]["nvidia.com/gpu"]
    assert set(c["resources"]["limits"]) == {"nvidia.com/gpu"}, "no CPU/memory limits (shm is memory)"
    assert c["resources"]["requests"]["cpu"] == "12" and c["resources"]["requests"]["memory"] == "24Gi"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_request_heuristics_are_overridable() -> None:
    m, p, pool = llama_8b()
    opts = RenderOptions(cpu_request_per_gpu=2.5, memory_request_base_gib=4, memory_request_per_gpu_gib=2)
    requests = container(render_objects(m, p, pool, opts)[0])["resources"]["requests"]
    assert requests["cpu"] == "2500m" and requests["memory"] == "6Gi"


@pytest.mark.parametrize(("tp", "size"), [(1, "2Gi"), (4, "8Gi"), (8, "16Gi")])
def test_shm_is_a_memory_emptydir_growing_with_gpus(tp: int, size: str) -> None:
    m, _, _ = llama_70b()
    p = plan(m, H100, tp=tp, weights_gib=131.0 / tp, max_model_len=8192)
    spec = pod_spec(render_objects(m, p, H100)[1])
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": size}
    mounts = {v["name"]: v["mountPath"] for v in spec["containers"][0]["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"


def test_probes_and_a_startup_probe_that_never_judges_a_start() -> None:
    """The startupProbe is a one-week backstop: the operator judges starts by their progress
    (controller.starts), so a slow-but-healthy load is never killed by the kubelet."""
    for case in (llama_8b, llama_70b):
        m, p, pool = case()
        c = container(render_objects(m, p, pool)[-2 if case is llama_8b else 1])
        start = c["startupProbe"]
        assert start["httpGet"] == {"path": "/v1/models", "port": "http"}
        assert start["failureThreshold"] * start["periodSeconds"] == STARTUP_PROBE_BACKSTOP_SECONDS
        assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_expected_start_formula_grows_with_model_size_and_fp8_on_load_doubles_the_checkpoint() -> None:
    """expected start = 600 s + 8 s per GiB of checkpoint (deadlines, scale-from-zero holds)."""
    for case, ckpt in ((llama_8b, 14.99), (llama_70b, 32.87 * 4)):
        _, p, _ = case()
        expected = sizing(p, RenderOptions()).startup_seconds
        assert 600 + 8 * ckpt <= expected < 600 + 8 * ckpt + 8
    _, p, _ = llama_70b()

    def expected_start(**update: Any) -> int:
        return sizing(p.model_copy(update=update), RenderOptions()).startup_seconds

    small = expected_start(memory_per_gpu=p.memory_per_gpu.model_copy(update={"weights_gib": 2.0}))  # type: ignore[union-attr]
    assert small < expected_start() < expected_start(quantization="fp8", online_quantization=True)
    assert expected_start(quantization="fp8") == expected_start()  # an FP8 checkpoint downloads as stored
    assert expected_start(memory_per_gpu=None) == 3600


def test_hf_token_only_through_secret_key_ref() -> None:
    m, p, pool = llama_8b()
    env = container(render_objects(m, p, pool)[0])["env"]
    token = [e for e in env if e["name"] == "HF_TOKEN"]
    assert token == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]
    assert {"name": "HF_HOME", "value": "/cache/huggingface"} in env
    m2 = with_spec(m, credentials={"huggingFaceToken": None})
    names = [e["name"] for e in container(render_objects(m2, p, pool)[0])["env"]]
    assert "HF_TOKEN" not in names


def test_user_env_follows_ours_and_reserved_names_are_refused() -> None:
    m, p, pool = llama_70b()
    env = container(render_objects(m, p, pool)[1])["env"]
    assert env[-1] == {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "VLLM_API_KEY", "LWS_GROUP_SIZE"):
        bad = with_spec(m, serving={"env": [{"name": name, "value": "x"}]})
        with pytest.raises(InvalidSpec, match=name):
            render_objects(bad, p, pool)


def test_cache_empty_dir_by_default_with_ephemeral_storage_request() -> None:
    m, p, pool = llama_8b()
    objects = render_objects(m, p, pool)
    spec = pod_spec(objects[0])
    assert {"name": "model-cache", "emptyDir": {}} in spec["volumes"]
    # 14.99 GiB checkpoint: ceil(1.1 x 14.99) + 10 = 27 GiB
    assert spec["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "27Gi"
    assert "PersistentVolumeClaim" not in {o["kind"] for o in objects}
    off = render_objects(m, p, pool, RenderOptions(request_ephemeral_storage=False))
    assert "ephemeral-storage" not in container(off[0])["resources"]["requests"]


def test_cache_pvc_is_created_and_mounted() -> None:
    m, p, pool = llama_70b()
    objects = render_objects(m, p, pool)
    pvc = objects[0]
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == "llama-3-3-70b-cache"
    # two replicas share it: ReadWriteMany; size derived from 4 x 32.87 GiB
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == f"{math.ceil(1.1 * 4 * 32.87) + 10}Gi"
    assert pvc["spec"]["storageClassName"] == "efs-sc"
    volumes = pod_spec(objects[1])["volumes"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "llama-3-3-70b-cache"}} in volumes
    sized = with_spec(m, cache={"mode": "pvc", "size": "500Gi"})
    assert render_objects(sized, p, pool)[0]["spec"]["resources"]["requests"]["storage"] == "500Gi"


def test_pvc_access_mode_once_for_a_single_pod_that_never_surges() -> None:
    m, p, pool = llama_8b()
    single = with_spec(m, cache={"mode": "pvc"}, rollout={"maxSurge": 0, "maxUnavailable": 1})
    assert render_objects(single, p, pool)[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    forced = RenderOptions(cache_access_mode="ReadWriteOnce")
    assert render_objects(with_spec(m, cache={"mode": "pvc"}), p, pool, forced)[0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_security_context_and_service_account_token() -> None:
    m, p, pool = llama_8b()
    spec = pod_spec(render_objects(m, p, pool)[0])
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    sc = spec["containers"][0]["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
    for forbidden in ("serviceAccountName", "hostNetwork", "hostPID", "hostIPC"):
        assert forbidden not in spec
    assert all("hostPath" not in v for v in spec["volumes"])


def test_non_root_is_an_operator_option() -> None:
    m, p, pool = llama_8b()
    spec = pod_spec(render_objects(m, p, pool, RenderOptions(run_as_user=1000))[0])
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["fsGroup"] == 1000
    assert {"name": "HOME", "value": "/cache/home"} in spec["containers"][0]["env"]


def test_labels_selectors_and_hash_annotation() -> None:
    m, p, pool = llama_70b()
    objects = by_kind(render_objects(m, p, pool))
    dep = objects["Deployment"]
    expected = {
        "app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llama-3-3-70b",
        "app.kubernetes.io/component": "server", "app.kubernetes.io/managed-by": "modeldeploy",
        "modeldeploy.dev/name": "llama-3-3-70b", "team": "search",
    }
    for o in objects.values():
        assert o["metadata"]["labels"] == expected
    template = dep["spec"]["template"]
    # The user's labels stay off the pods: a label edit must not replace the replicas.
    assert template["metadata"]["labels"] == {k: v for k, v in expected.items() if k != "team"}
    selector = {"modeldeploy.dev/name": "llama-3-3-70b", "app.kubernetes.io/component": "server"}
    assert dep["spec"]["selector"]["matchLabels"] == selector
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    digest = dep["metadata"]["annotations"][HASH_ANNOTATION]
    assert template["metadata"]["annotations"][HASH_ANNOTATION] == digest == pod_template_hash(template)
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


def test_serving_pods_drain_before_vllm_stops() -> None:
    """A preStop sleep keeps vLLM serving while endpoints are removed (asynchronously) from
    Services and load balancers; the grace period covers it. 0 turns the hook off."""
    m, p, pool = llama_8b()
    pod = by_kind(render_objects(m, p, pool))["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert pod["terminationGracePeriodSeconds"] == 70
    off = by_kind(render_objects(m, p, pool, RenderOptions(pre_stop_seconds=0)))
    assert "lifecycle" not in off["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_label_edit_keeps_the_pod_template() -> None:
    """`helm.sh/chart: models-0.1.0` → `0.1.1` on a ModelDeployment relabels its children but
    leaves the pod template (and its hash) alone: no replica restarts."""
    m, p, pool = llama_8b()

    def with_chart(version: str) -> dict[str, Any]:
        meta = m.metadata.model_copy(update={"labels": {"helm.sh/chart": f"models-{version}"}})
        objects = by_kind(render_objects(m.model_copy(update={"metadata": meta}), p, pool))
        return objects["Deployment"]

    before, after = with_chart("0.1.0"), with_chart("0.1.1")
    assert before["metadata"]["labels"]["helm.sh/chart"] == "models-0.1.0"
    assert after["metadata"]["labels"]["helm.sh/chart"] == "models-0.1.1"
    assert before["spec"]["template"] == after["spec"]["template"]


def test_reserved_and_tool_labels_are_not_copied() -> None:
    m, p, pool = llama_8b()
    labelled = m.model_copy(update={"metadata": m.metadata.model_copy(update={"labels": {
        "app.kubernetes.io/instance": "argo-app", "modeldeploy.dev/name": "other",
        "kustomize.toolkit.fluxcd.io/name": "flux", "cost-center": "42"}})})
    labels = render_objects(labelled, p, pool)[0]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "llama-3-1-8b"
    assert labels["modeldeploy.dev/name"] == "llama-3-1-8b"
    assert labels["cost-center"] == "42" and "kustomize.toolkit.fluxcd.io/name" not in labels


def test_invalid_label_value_is_refused() -> None:
    m, p, pool = llama_8b()
    bad = m.model_copy(update={"metadata": m.metadata.model_copy(update={"labels": {"team": "a\nb: c"}})})
    with pytest.raises(InvalidSpec, match="not a valid label value"):
        render_objects(bad, p, pool)


def test_hash_changes_with_the_pod_template_only() -> None:
    m, p, pool = llama_70b()

    def digest(mm: Any = m, pp: Any = p) -> str:
        return str(render_objects(mm, pp, pool)[1]["metadata"]["annotations"][HASH_ANNOTATION])

    base = digest()
    assert digest() == base
    assert digest(pp=p.model_copy(update={"replicas": 5})) == base
    assert digest(pp=p.model_copy(update={"max_model_len": 16384})) != base
    assert digest(mm=with_spec(m, serving={"extraArgs": ["--enforce-eager"]})) != base


def test_replicas_rollout_and_pdb() -> None:
    m, p, pool = llama_70b()
    objects = by_kind(render_objects(m, p, pool))
    dep = objects["Deployment"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert objects["PodDisruptionBudget"]["metadata"]["name"] == "llama-3-3-70b-pdb"
    single = by_kind(render_objects(m, p.model_copy(update={"replicas": 1}), pool))
    assert "PodDisruptionBudget" not in single
    full = by_kind(render_objects(m, p, pool, rollout=RolloutInputs(free_gpus=0)))
    assert full["Deployment"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    with pytest.raises(InvalidSpec, match="cannot both be 0"):
        render_objects(with_spec(m, rollout={"maxSurge": 0, "maxUnavailable": 0}), p, pool)


def test_metrics_annotations_or_service_monitor() -> None:
    m, p, pool = llama_8b()
    plain = by_kind(render_objects(m, p, pool))
    annotations = plain["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000" and annotations["prometheus.io/path"] == "/metrics"
    assert "ServiceMonitor" not in plain
    opts = RenderOptions(service_monitor=True, service_monitor_labels={"release": "kube-prometheus"})
    monitored = by_kind(render_objects(m, p, pool, opts))
    assert not any(k.startswith("prometheus.io/") for k in monitored["Deployment"]["spec"]["template"]["metadata"]["annotations"])
    sm = monitored["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert sm["spec"]["selector"]["matchLabels"] == monitored["Service"]["spec"]["selector"]


def test_service_is_cluster_ip_on_8000_named_http() -> None:
    m, p, pool = llama_8b()
    svc = by_kind(render_objects(m, p, pool))["Service"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]


def test_namespace_omitted_when_the_spec_has_none() -> None:
    m, p, pool = llama_8b()
    bare = m.model_copy(update={"metadata": m.metadata.model_copy(update={"namespace": None})})
    assert all("namespace" not in o["metadata"] for o in render_objects(bare, p, pool))


# --- multi node: LeaderWorkerSet ---------------------------------------------------------------

def test_multi_node_plan_renders_leader_worker_set() -> None:
    m, p, pool = deepseek_v3()
    objects = render_objects(m, p, pool)
    assert [o["kind"] for o in objects] == ["LeaderWorkerSet", "Service"]
    lws = objects[0]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["metadata"]["name"] == "deepseek-v3-lws", "not the Service's name (LWS makes a headless one)"
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert tmpl["size"] == 2 and tmpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"


def test_leader_runs_ray_head_then_vllm_with_ray_backend() -> None:
    m, p, pool = deepseek_v3()
    lws = render_objects(m, p, pool)[0]
    leader = container(lws, "leaderTemplate")
    assert leader["command"] == ["sh", "-c", LEADER_SCRIPT, "vllm"]
    assert "ray start --head" in LEADER_SCRIPT and 'exec vllm serve "$@"' in LEADER_SCRIPT
    args = leader["args"]
    assert args[0] == "deepseek-ai/DeepSeek-V3"
    assert flag(args, "--tensor-parallel-size") == "8" and flag(args, "--pipeline-parallel-size") == "2"
    assert flag(args, "--distributed-executor-backend") == "ray"
    assert flag(args, "--enable-expert-parallel") == ""
    assert leader["startupProbe"]["httpGet"]["path"] == "/v1/models"


def test_workers_join_the_leader_and_carry_the_same_gpu_shm_and_security() -> None:
    m, p, pool = deepseek_v3()
    lws = render_objects(m, p, pool)[0]
    leader, worker = container(lws, "leaderTemplate"), container(lws, "workerTemplate")
    assert worker["command"] == ["sh", "-c", WORKER_SCRIPT] and "args" not in worker
    assert 'ray start --address="${LWS_LEADER_ADDRESS}:6379"' in WORKER_SCRIPT and "--block" in WORKER_SCRIPT
    assert "$(" not in WORKER_SCRIPT + LEADER_SCRIPT, "the kubelet would expand $(...)"
    for key in ("resources", "securityContext", "volumeMounts", "env", "image"):
        assert worker[key] == leader[key], key
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "startupProbe" not in worker and "ports" not in worker
    for role in ("leaderTemplate", "workerTemplate"):
        spec = pod_spec(lws, role)
        assert spec["automountServiceAccountToken"] is False
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in spec["volumes"]


def test_lws_service_selects_leaders_only() -> None:
    m, p, pool = deepseek_v3()
    svc = by_kind(render_objects(m, p, pool))["Service"]
    assert svc["metadata"]["name"] == "deepseek-v3"
    assert svc["spec"]["selector"] == {
        "leaderworkerset.sigs.k8s.io/name": "deepseek-v3-lws", "leaderworkerset.sigs.k8s.io/worker-index": "0"}


def test_lws_hash_covers_both_templates_and_metrics_only_on_leader() -> None:
    m, p, pool = deepseek_v3()
    lws = render_objects(m, p, pool)[0]
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    digest = lws["metadata"]["annotations"][HASH_ANNOTATION]
    assert digest == pod_template_hash(tmpl["leaderTemplate"], tmpl["workerTemplate"])
    assert tmpl["workerTemplate"]["metadata"]["annotations"] == {HASH_ANNOTATION: digest}
    assert tmpl["leaderTemplate"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_lws_replicas_get_a_pdb_over_all_group_pods() -> None:
    m, p, pool = deepseek_v3()
    objects = by_kind(render_objects(m, p.model_copy(update={"replicas": 3}), pool))
    assert objects["LeaderWorkerSet"]["spec"]["replicas"] == 3
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]["modeldeploy.dev/name"] == "deepseek-v3"


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--tensor-parallel-size", "2"], ["--tensor-parallel-size=2"], ["-tp", "2"], ["-tp=2"],
    ["--tensor_parallel_size", "2"], ["--tensor-parallel", "2"], ["--pipeline-parallel-size", "2"],
    ["-pp", "2"], ["--model", "evil/model"], ["--model=evil/model"], ["--max-model-len", "1000000"],
    ["--served-model-name", "gpt-4"], ["--quantization", "awq"], ["-q", "awq"], ["-qawq"],
    ["--dtype=float32"], ["--kv-cache-dtype", "fp8"], ["--gpu-memory-utilization", "0.99"],
    ["--max-num-seqs", "512"], ["--distributed-executor-backend", "mp"], ["--port", "9000"],
    ["--host=127.0.0.1"], ["--enable-prefix-caching", "--port=1"], ["--revision", "main"],
    ["--max-num-batched-tokens", "99"], ["--config", "/etc/x.yaml"], ["--api-key", "secret"],
    ["--data-parallel-size", "2"], ["-dp", "2"], ["--enable-expert-parallel"],
    ["--tensor-parallel-size.x", "2"], ["--no-enable-expert-parallel"],
])
def test_extra_args_that_contradict_the_plan_are_refused(args: list[str]) -> None:
    m, p, pool = llama_70b()
    with pytest.raises(InvalidSpec) as err:
        render_objects(with_spec(m, serving={"extraArgs": args}), p, pool)
    message = str(err.value)
    assert message.startswith("spec.serving.extraArgs[") and "\n" not in message
    offending = next(a for a in args if a.startswith("-") and a != "--enable-prefix-caching")
    assert repr(offending) in message


def test_refusal_message_names_the_plan_value() -> None:
    m, p, pool = llama_70b()
    with pytest.raises(InvalidSpec, match=r"sets --tensor-parallel-size.*plan sets 4.*tensorParallelSize"):
        render_objects(with_spec(m, serving={"extraArgs": ["--tensor-parallel-size", "2"]}), p, pool)


@pytest.mark.parametrize("args", [["evil/model"], ["--", "evil/model"], ["-"], ["--enforce-eager", "--", "x"]])
def test_positional_extra_args_are_refused(args: list[str]) -> None:
    m, p, pool = llama_8b()
    with pytest.raises(InvalidSpec, match="positional"):
        render_objects(with_spec(m, serving={"extraArgs": args}), p, pool)


@pytest.mark.parametrize("args", [
    ["--enforce-eager"], ["--max-loras", "4"], ["--data-parallel-size-local", "1"],
    ["--lora-modules", "a=org/a", "b=org/b"], ["--model-impl", "vllm"], ["--tokenizer-revision=main"],
    ["-O3"], ["--max-log-len", "-1"], ["--hf-overrides", '{"rope_scaling": null}'],
])
def test_unrelated_extra_args_pass_through_verbatim(args: list[str]) -> None:
    m, p, pool = llama_8b()
    rendered = container(render_objects(with_spec(m, serving={"extraArgs": args}), p, pool)[0])["args"]
    assert rendered[-len(args):] == args


def test_infeasible_plan_is_not_renderable() -> None:
    m, p, pool = llama_8b()
    bad = p.model_copy(update={"feasible": False, "reason": "needs 141 GiB, pool has 22"})
    with pytest.raises(PlanNotRenderable, match="needs 141 GiB"):
        render_objects(m, bad, pool)


def test_pool_must_be_the_planned_pool() -> None:
    m, p, _ = llama_8b()
    with pytest.raises(ValueError, match="eks-a10g-x1"):
        render_objects(m, p, H100)


def test_render_is_deterministic() -> None:
    for case in (llama_8b, llama_70b, deepseek_v3):
        m, p, pool = case()
        assert render_objects(m, p, pool) == render_objects(m, p, pool)
    assert A10G.name == "eks-a10g-x1"


def test_embedded_fragment_must_land_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workload template gets a random sentinel where the parsed pod template goes; if the
    # sentinel appeared twice (or not at all) the object would be wrong, so rendering refuses.
    from modeldeploy.render import engine

    def twice(name: str, /, **context: object) -> dict[str, object]:
        token = context["template"]
        return {"apiVersion": "apps/v1", "kind": "Deployment", "a": token, "b": [token]}

    monkeypatch.setattr(engine, "render_fragment", twice)
    with pytest.raises(engine.RenderingError, match="exactly once"):
        engine.render_workload("deployment.yaml.j2", embed={"template": {"spec": {}}})
    monkeypatch.setattr(engine, "render_fragment", lambda name, /, **c: {"apiVersion": "apps/v1", "kind": "Deployment"})
    with pytest.raises(engine.RenderingError, match="exactly once"):
        engine.render_workload("deployment.yaml.j2", embed={"template": {"spec": {}}})
