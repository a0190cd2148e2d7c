"""Reading vLLM's `/metrics` from the ready serving pods (the builtin autoscaler's input).

Plain HTTP to podIP:port, every request bounded: a total timeout, a response size cap, at most
`concurrency` requests at once per ModelDeployment, no redirects, no proxy from the environment,
no pooled connection to a pod that may be gone. Whatever goes wrong becomes a typed `NoSample`
(`decisions.metrics`), which the decision turns into a hold; nothing raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from ..decisions.metrics import MissReason, NoSample, Scrape, parse_vllm_metrics, unreachable

# Parse expositions larger than this off the event loop (a vLLM one is ~100 KiB).
_INLINE_PARSE_BYTES = 64 * 1024


def metrics_url(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"


class Scraper:
    def __init__(self, *, port: int = 8000, timeout: float = 2.0,
                 max_bytes: int = 4 * 1024 * 1024, concurrency: int = 16) -> None:
        self.port = port
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.timeout),
                trust_env=False, auto_decompress=False,
                headers={"Accept": "text/plain", "User-Agent": "modeldeploy-autoscaler"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape(self, targets: Sequence[tuple[str, str]]) -> tuple[Scrape, ...]:
        """One sample (or miss) per (pod name, pod IP), in the order given."""
        if not targets:
            return ()
        session = self._client()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(pod: str, ip: str) -> Scrape:
            async with gate:
                return await self._one(session, pod, ip)

        return tuple(await asyncio.gather(*(one(pod, ip) for pod, ip in targets)))

    async def fetch(self, url: str) -> bytes | str:
        """One bounded GET (same timeout, size cap and session as a scrape): the body, or why
        there is none (for a log line)."""
        try:
            async with asyncio.timeout(self.timeout), \
                    self._client().get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    return f"HTTP {resp.status} from {url}"
                body = await self._read(resp)
        except TimeoutError:
            return f"no answer from {url} within {self.timeout:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__} from {url}"
        return body if len(body) <= self.max_bytes else f"{url} is over {self.max_bytes} bytes"

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, or its first max_bytes + 1 bytes (enough to know it is too large)."""
        chunks: list[bytes] = []
        size = 0
        while size <= self.max_bytes:
            chunk = await resp.content.read(self.max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def _one(self, session: aiohttp.ClientSession, pod: str, ip: str) -> Scrape:
        try:
            async with asyncio.timeout(self.timeout), \
                    session.get(metrics_url(ip, self.port), allow_redirects=False) as resp:
                if resp.status != 200:
                    return unreachable(pod, f"HTTP {resp.status} from /metrics")
                body = await self._read(resp)
        except TimeoutError:
            return unreachable(pod, f"no answer from {ip}:{self.port} within {self.timeout:g}s")
        except aiohttp.ClientConnectorError as exc:
            return unreachable(pod, f"cannot connect to {ip}:{self.port}: "
                                    f"{exc.os_error.strerror or type(exc.os_error).__name__}")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return unreachable(pod, f"{type(exc).__name__} from {ip}:{self.port}")
        if len(body) > self.max_bytes:
            return NoSample(pod, MissReason.TOO_LARGE, f"/metrics is over {self.max_bytes} bytes")
        if len(body) > _INLINE_PARSE_BYTES:
            return await asyncio.to_thread(parse_vllm_metrics, pod, body)
        return parse_vllm_metrics(pod, body)
