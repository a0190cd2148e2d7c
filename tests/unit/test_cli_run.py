"""`modeldeploy run` refuses to start with one line and a non-zero exit, never a traceback:
missing or broken kubeconfig (naming the path), unknown context, unreachable API server (after a
bounded wait), invalid namespace names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeldeploy.cli.main import app

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: ctx, context: {{cluster: c, user: u}}}}]
current-context: ctx
""")
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args], env={"KUBERNETES_SERVICE_HOST": None, "KUBECONFIG": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist; give --kubeconfig or set KUBECONFIG"),
    ("clusters: [unclosed\n", "is not valid YAML at line 2"),
    (b"\x89PNG\x00", "is not UTF-8 text"),
    ("- a list\n", "is not a kubeconfig"),
])
def test_a_missing_or_broken_kubeconfig_is_one_line_naming_the_path(
        tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "config"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, err = run("--kubeconfig", str(path))
    assert code == 2 and err == f"error: kubeconfig {path} {message}" + err.split(message, 1)[1]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unknown_context_names_the_ones_there_are(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "https://127.0.0.1:9")
    code, err = run("--kubeconfig", str(path), "--context", "prod")
    assert code == 2 and err.strip() == f"error: kubeconfig {path} has no context 'prod' (it has: ctx)"


def test_an_unreachable_api_server_is_one_line_after_a_bounded_wait(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    code, err = run("--kubeconfig", str(kubeconfig(tmp_path, server)), "--connect-timeout", "2")
    assert code == 4 and err.startswith(f"error: cannot reach the Kubernetes API server at {server}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_invalid_namespace_name_is_refused(tmp_path: Path) -> None:
    code, err = run("--kubeconfig", str(kubeconfig(tmp_path, "https://127.0.0.1:9")), "-n", "Bad_NS")
    assert code == 2 and "'Bad_NS' is not a namespace name" in err and len(err.strip().splitlines()) == 1
