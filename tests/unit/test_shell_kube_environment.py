"""The API client reads the proxy environment once, at connect, not on every request."""

from __future__ import annotations

import asyncio
import base64

import pytest
from kubernetes_asyncio import client as k8s

from modeldeploy.shell.kube import _read_environment_once

API_SERVER = "https://10.96.0.1:443"


def _configured(host: str) -> tuple[object, object, bool]:
    async def inspect() -> tuple[object, object, bool]:
        configuration = k8s.Configuration(host=host)
        api = k8s.ApiClient(configuration)
        try:
            _read_environment_once(api, host)
            rest = api.rest_client
            return rest.proxy, rest.proxy_headers, rest.pool_manager.trust_env
        finally:
            await api.close()
    return asyncio.run(inspect())


@pytest.fixture(autouse=True)
def _clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_a_proxy_in_the_environment_is_kept_with_its_credentials(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://ops:s3cret@proxy.corp.example:3128")
    proxy, headers, trusts_env = _configured(API_SERVER)
    assert proxy == "http://proxy.corp.example:3128"
    assert isinstance(headers, dict)
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert trusts_env is False  # no per-request environment or netrc lookups


def test_no_proxy_for_the_api_server_sends_requests_directly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "10.96.0.1,.svc")
    proxy, headers, trusts_env = _configured(API_SERVER)
    assert proxy is None and not headers
    assert trusts_env is False


def test_without_a_proxy_in_the_environment_nothing_is_set() -> None:
    proxy, headers, trusts_env = _configured(API_SERVER)
    assert proxy is None and not headers and trusts_env is False
