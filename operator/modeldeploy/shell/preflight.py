"""What `modeldeploy run` checks before it starts: a kubeconfig it can read, the context it
names, an API server that answers, in a bounded time. Each failure is one line naming the path,
the context or the server, instead of a client library's traceback or endless retries."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

from ..errors import ModeldeployError
from ..kubeyaml import YamlError, decode
from .config import OperatorConfig

DEFAULT_KUBECONFIG = Path("~/.kube/config")


class StartupError(ModeldeployError):
    """The operator cannot start here; the message says what to fix, in one line."""

    reason = "StartupError"


class ApiServerUnavailable(StartupError):
    """The kubeconfig is fine but its API server did not answer or refused the credentials:
    not a mistake in the input (the CLI's exit 4, as for a hub that cannot be asked)."""


def kubeconfig_path(config: OperatorConfig) -> Path | None:
    """The kubeconfig file the operator reads (None: KUBECONFIG lists several, the client merges)."""
    if config.kubeconfig is not None:
        return Path(config.kubeconfig).expanduser()
    listed = os.environ.get("KUBECONFIG", "")
    if os.pathsep in listed:
        return None
    return Path(listed or DEFAULT_KUBECONFIG).expanduser()


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StartupError(f"kubeconfig {path} does not exist; give --kubeconfig or set KUBECONFIG "
                           "(inside a pod the in-cluster config is used)")
    try:
        text = decode(path.read_bytes())
        data = yaml.safe_load(text)
    except OSError as exc:
        raise StartupError(f"kubeconfig {path} cannot be read: {exc.strerror or exc}") from None
    except YamlError as exc:
        raise StartupError(f"kubeconfig {path} is {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise StartupError(f"kubeconfig {path} is not valid YAML{where}: "
                           f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise StartupError(f"kubeconfig {path} is not a kubeconfig (not a YAML mapping)")
    return data


def _check_context(path: Path, data: dict[str, Any], context: str | None) -> None:
    names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
    wanted = context or data.get("current-context")
    if not wanted:
        raise StartupError(f"kubeconfig {path} sets no current-context; give --context "
                           f"(it has: {', '.join(map(str, names)) or 'no contexts'})")
    if wanted not in names:
        raise StartupError(f"kubeconfig {path} has no context {wanted!r} "
                           f"(it has: {', '.join(map(str, names)) or 'no contexts'})")


async def load_client_configuration(config: OperatorConfig) -> k8s.Configuration:
    """kubeconfig when given, else in-cluster when running in a pod, else the default file.

    Raises StartupError naming the file or context that is missing or broken.
    """
    client_config = k8s.Configuration()
    try:
        if config.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            loaders: Any = k8s_config  # load_incluster_config is not annotated
            loaders.load_incluster_config(client_configuration=client_config)
            return client_config
        path = kubeconfig_path(config)
        if path is not None:
            _check_context(path, _read_kubeconfig(path), config.context)
        await k8s_config.load_kube_config(
            config_file=str(path) if path is not None else None,
            context=config.context, client_configuration=client_config)
    except ConfigException as exc:
        where = f"kubeconfig {kubeconfig_path(config) or os.environ.get('KUBECONFIG')}" \
            if config.kubeconfig is not None or "KUBERNETES_SERVICE_HOST" not in os.environ \
            else "in-cluster config"
        raise StartupError(f"{where}: {' '.join(str(exc).split())}") from None
    return client_config


async def check_api_server(client_config: k8s.Configuration, timeout: float) -> None:
    """One GET /version, bounded by `timeout` seconds. Raises ApiServerUnavailable when it fails."""
    host = client_config.host
    try:
        async with k8s.ApiClient(client_config) as api:
            await asyncio.wait_for(
                k8s.VersionApi(api).get_code(_request_timeout=timeout), timeout)
    except TimeoutError:
        raise ApiServerUnavailable(f"the Kubernetes API server at {host} did not answer within "
                           f"{timeout:g} s") from None
    except k8s.ApiException as exc:
        if exc.status in (401, 403):
            raise ApiServerUnavailable(f"the Kubernetes API server at {host} refused the credentials "
                               f"({exc.status} {exc.reason})") from None
        # Any other answer means it is reachable; the operator's own calls report the rest.
    except (OSError, ValueError) as exc:  # connection refused, DNS, TLS
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ApiServerUnavailable(f"cannot reach the Kubernetes API server at {host}: {detail}") from None


async def preflight(config: OperatorConfig) -> None:
    """Everything `run` checks before starting the operator. Raises StartupError."""
    await check_api_server(await load_client_configuration(config), config.connect_timeout)
