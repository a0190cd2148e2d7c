"""The shared cache's objects: its ReadWriteMany claim and its download Job."""

from __future__ import annotations

from typing import Any

from .cache import (
    DOWNLOAD_BACKOFF_LIMIT,
    DOWNLOAD_CONTAINER,
    DOWNLOAD_UID,
    EXIT_PERMANENT,
    SHARED_MOUNT,
    CacheKey,
    cache_key,
    download_args,
    shared_annotations,
    shared_labels,
)
from .context import Context, Env, Meta
from .engine import render_object


def cache_storage_class(ctx: Context) -> str | None:
    """spec.cache.storageClassName, else the operator's default; None: the cluster default."""
    return ctx.md.spec.cache.storage_class_name or ctx.options.cache_storage_class_name


def cache_size(ctx: Context) -> str:
    """spec.cache.size, else the checkpoint plus headroom (`sizes.Sizing.cache_gib`)."""
    return ctx.md.spec.cache.size or f"{ctx.sizing.cache_gib}Gi"


def _meta(ctx: Context, name: str, key: CacheKey) -> Meta:
    return Meta(name, ctx.md.metadata.namespace, shared_labels(key), shared_annotations(key))


def _download_env(ctx: Context) -> list[Env]:
    # HOME and HF_HOME on the writable /tmp: the root filesystem is read-only, and
    # huggingface_hub keeps small state (token path, xet shards) under HF_HOME. hf_xet's chunk
    # cache (10 GB by default; xet-runtime config/groups/chunk_cache.rs,
    # HF_XET_CHUNK_CACHE_SIZE_BYTES) only helps repeated downloads: off, so /tmp stays small.
    env = [Env("HOME", "/tmp"), Env("HF_HOME", "/tmp/huggingface"),
           Env("HF_HUB_DISABLE_TELEMETRY", "1"), Env("HF_XET_CHUNK_CACHE_SIZE_BYTES", "0")]
    if ctx.options.hub_endpoint is not None:
        env.append(Env("HF_ENDPOINT", ctx.options.hub_endpoint))
    token = ctx.md.spec.credentials.hugging_face_token
    if token is not None:
        env.append(Env("HF_TOKEN", secret_name=token.name, secret_key=token.key))
    return env


def shared_cache_objects(ctx: Context) -> list[dict[str, Any]]:
    """[claim, download Job] for spec.cache.mode shared; [] otherwise.

    Identical for every ModelDeployment of the namespace serving the same repository and
    revision (the Job's token Secret is the one of whichever ModelDeployment created it first:
    a Job's pod template is immutable).
    """
    if ctx.md.spec.cache.mode != "shared":
        return []
    key = cache_key(ctx.md, ctx.plan)
    claim = render_object(
        "persistentvolumeclaim.yaml.j2", meta=_meta(ctx, key.claim_name, key),
        access_mode="ReadWriteMany", storage_class=cache_storage_class(ctx), size=cache_size(ctx),
    )
    job = render_object(
        "downloadjob.yaml.j2", meta=_meta(ctx, key.job_name, key),
        backoff_limit=DOWNLOAD_BACKOFF_LIMIT, container=DOWNLOAD_CONTAINER,
        permanent_exit_code=EXIT_PERMANENT, uid=DOWNLOAD_UID, image=ctx.options.download_image,
        args=download_args(key), env=_download_env(ctx), mount=SHARED_MOUNT, claim=key.claim_name,
    )
    return [claim, job]
