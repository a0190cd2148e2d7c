"""The command line itself, as a new user meets it (trial of 2026-11-30): `--version`, usage
errors as one line naming the flag (exit 2), `--help` still readable, and the README's command
table listing every command the app has."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
EXAMPLE = str(ROOT / "examples" / "llama-3.1-8b.yaml")


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"modeldeploy {importlib.metadata.version('modeldeploy')}"


@pytest.mark.parametrize(("args", "line"), [
    (["plan", EXAMPLE, "--bogus"], "error: modeldeploy plan: --bogus: no such option"),
    (["plan", EXAMPLE, "--offlin"], "error: modeldeploy plan: --offlin: no such option (did you mean --offline?)"),
    (["plan", EXAMPLE, "-o", "xml"], "error: modeldeploy plan: --output: 'xml' is not one of 'table', 'json', 'yaml'"),
    (["plan", EXAMPLE, "--pools"], "error: modeldeploy plan: --pools: option requires an argument"),
    (["models", "-o", "csv"], "error: modeldeploy models: --output: 'csv' is not one of 'table', 'json'"),
    (["download", "--cache-dir", "/tmp/x", "--marker", "/tmp/m"], "error: modeldeploy download: --model: missing"),
    (["plan"], "error: modeldeploy plan: FILES: missing"),
    (["plna"], "error: modeldeploy: no such command 'plna' (did you mean plan?)"),
])
def test_a_usage_error_is_one_line_naming_the_flag_exit_2(args: list[str], line: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "╭" not in result.stderr, result.stderr
    assert lines[0].startswith(line), lines[0]
    assert lines[0].endswith(f"(see {' '.join(line.split(':')[1].split())} --help)"), lines[0]


def test_help_stays_readable() -> None:
    result = runner.invoke(app, ["plan", "--help"])
    assert result.exit_code == 0
    assert "--output" in result.stdout and "--offline" in result.stdout and "Exit status" in result.stdout
    bare = runner.invoke(app, [])  # no command: the overview, every command named
    assert all(name in bare.output for name in command_names())


def command_names() -> set[str]:
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_readme_command_table_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The command line"):]
    table = section[:section.index("\n\n", section.index("| Command |"))]
    listed = set(re.findall(r"^\| `modeldeploy ([a-z-]+)", table, flags=re.M))
    assert listed == command_names(), f"README command table: missing {command_names() - listed}, " \
                                      f"not a command {listed - command_names()}"
