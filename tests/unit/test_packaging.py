"""The package's metadata as pip installs it (new-user trial of 2026-11-30: `make install`
printed setuptools' deprecation warning for the license table)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_an_spdx_expression_in_the_installed_metadata() -> None:
    # PEP 639: `license = "SPDX"` (setuptools >= 77 writes License-Expression, Metadata 2.4); the
    # table form `{text = ...}` is deprecated and warns at every build.
    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str)
    assert importlib.metadata.metadata("modeldeploy")["License-Expression"] == license_ == "Apache-2.0"
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]
