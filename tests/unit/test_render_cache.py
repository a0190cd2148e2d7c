"""spec.cache.mode shared: one claim and one download Job per (model, revision), serving pods
mount it read-only, offline, behind an init gate."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.render_cases import CASES, md, plan, validate, with_spec

from modeldeploy.api.deployment import MODEL_NAME, REVISION
from modeldeploy.errors import InvalidSpec
from modeldeploy.render import RenderOptions, render_objects
from modeldeploy.render.cache import HUB_CACHE, CacheKey, is_shared

SHARED = {"mode": "shared"}


def _kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for o in objects:
        if o["kind"] == "Deployment":
            out.append(o["spec"]["template"]["spec"])
        elif o["kind"] == "LeaderWorkerSet":
            lwt = o["spec"]["leaderWorkerTemplate"]
            out += [lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]]
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_three_replicas_share_one_claim_and_one_download(case: str) -> None:
    m, p, pool = CASES[case]()
    m = with_spec(m, cache=SHARED)
    objects = render_objects(m, p.model_copy(update={"replicas": 3}), pool,
                             RenderOptions(cache_storage_class_name="efs-sc"))
    [claim], [job] = _kinds(objects, "PersistentVolumeClaim"), _kinds(objects, "Job")
    assert is_shared(claim) and is_shared(job)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    expected_class = m.spec.cache.storage_class_name or "efs-sc"
    assert claim["spec"]["storageClassName"] == expected_class
    key = CacheKey(p.model, m.spec.model.revision or "main")
    assert claim["metadata"]["name"] == key.claim_name
    job_pod = job["spec"]["template"]["spec"]
    assert job_pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == key.claim_name
    args = job_pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == p.model and key.marker in args
    for spec in _pod_specs(objects):
        [gate] = spec["initContainers"]
        assert key.marker in gate["command"]
        weights = next(v for v in spec["volumes"] if v["name"] == "model-weights")
        assert weights["persistentVolumeClaim"] == {"claimName": key.claim_name, "readOnly": True}
        container = spec["containers"][0]
        mount = next(v for v in container["volumeMounts"] if v["name"] == "model-weights")
        assert mount["readOnly"] is True
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_CACHE"] == HUB_CACHE
        assert "ephemeral-storage" not in container["resources"]["requests"]
    for obj in objects:
        validate(obj)


def test_download_job_is_pss_restricted_without_a_service_account_token() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    [job] = _kinds(render_objects(with_spec(m, cache=SHARED), p, pool), "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [3]


def test_two_deployments_of_one_model_render_identical_shared_objects() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    a = with_spec(m, cache=SHARED)
    b = md("llama-other-team", {**a.model_dump(by_alias=True, exclude_none=True, mode="json")["spec"],
                                "replicas": 2})
    pb = plan(b, pool, tp=1, weights_gib=14.99, max_model_len=8192, max_num_batched_tokens=2048)
    shared_a = [o for o in render_objects(a, p, pool) if is_shared(o)]
    shared_b = [o for o in render_objects(b, pb, pool) if is_shared(o)]
    assert len(shared_a) == 2 and shared_a == shared_b


def test_another_revision_gets_another_claim() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    pinned = with_spec(m, cache=SHARED, model={"revision": "0e9e39f"})
    names = {
        o["metadata"]["name"]
        for spec in (with_spec(m, cache=SHARED), pinned)
        for o in render_objects(spec, p, pool) if is_shared(o)
    }
    assert len(names) == 4


def test_fp8_variant_caches_the_repository_vllm_serves() -> None:
    m, p, pool = CASES["llama-3.3-70b-h100-tp4"]()
    variant = p.model_copy(update={"model": "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"})
    [job] = _kinds(render_objects(with_spec(m, cache=SHARED), variant, pool), "Job")
    assert job["metadata"]["annotations"]["modeldeploy.dev/cache-model"] == variant.model


def test_shared_mode_reserves_the_offline_switch() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    m = with_spec(m, cache=SHARED, serving={"env": [{"name": "HF_HUB_OFFLINE", "value": "0"}]})
    with pytest.raises(InvalidSpec, match="HF_HUB_OFFLINE is set by modeldeploy"):
        render_objects(m, p, pool)


@pytest.mark.parametrize("mode", ["emptyDir", "pvc"])
def test_other_modes_have_no_gate_and_no_shared_objects(mode: str) -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    objects = render_objects(with_spec(m, cache={"mode": mode}), p, pool)
    assert not any(is_shared(o) for o in objects) and not _kinds(objects, "Job")
    [spec] = _pod_specs(objects)
    assert "initContainers" not in spec
    assert all(e["name"] != "HF_HUB_OFFLINE" for e in spec["containers"][0]["env"])


@given(model=st.from_regex(MODEL_NAME, fullmatch=True), revision=st.from_regex(REVISION, fullmatch=True))
def test_cache_names_are_dns_labels_with_room_for_the_job_suffix(model: str, revision: str) -> None:
    key = CacheKey(model, revision)
    assert len(key.claim_name) <= 52 and len(key.job_name) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", key.job_name)
    assert re.fullmatch(r"[0-9a-f]{12}", key.digest)
