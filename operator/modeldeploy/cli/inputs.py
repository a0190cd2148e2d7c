"""Reading ModelDeployment and GPUPool documents from files: the one input path of `plan`,
`render` and the tests. YAML is read as kubectl reads it (kubeyaml), every object is validated
as the API server and the operator would (validation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import GPUPool, ModelDeployment
from ..errors import InvalidSpec
from ..kubeyaml import YamlError, decode, load_documents
from ..validation import object_label, validate_gpu_pool, validate_model_deployment

KINDS = ("ModelDeployment", "GPUPool")


class InvalidInputs(InvalidSpec):
    """Every problem of the input files, one line each (`FILE: KIND NAME: field: why`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    """A ModelDeployment and the file it came from (for messages and the plan's `file`)."""

    file: str
    deployment: ModelDeployment


@dataclass
class Inputs:
    deployments: list[Loaded] = field(default_factory=list)
    pools: list[GPUPool] = field(default_factory=list)


def read_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(position, object) of each document of one file. Raises InvalidSpec naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidSpec(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return [(doc.index, doc.body) for doc in load_documents(decode(data))]
    except YamlError as exc:
        raise InvalidSpec(f"{path}: {exc}") from None


def _load(inputs: Inputs, path: Path, index: int, doc: dict[str, Any], pools_only: bool) -> None:
    kind = doc.get("kind")
    wanted = ("GPUPool",) if pools_only else KINDS
    if kind not in wanted:
        what = f"kind {kind!r} is not" if kind else "kind is required:"
        raise InvalidSpec(f"{what} {' or '.join(wanted)}")
    if kind == "GPUPool":
        inputs.pools.append(validate_gpu_pool(doc))
    else:
        inputs.deployments.append(Loaded(str(path), validate_model_deployment(doc)))


def load_inputs(files: Iterable[Path], pool_files: Iterable[Path] = ()) -> Inputs:
    """Every object of `files` (ModelDeployments and GPUPools mixed) and `pool_files` (GPUPools).

    Raises InvalidInputs listing every invalid document, one line each, so that one run shows
    everything to fix; nothing is planned from input that is partly wrong.
    """
    inputs, problems = Inputs(), []
    for path, pools_only in [(Path(p), False) for p in files] + [(Path(p), True) for p in pool_files]:
        try:
            documents = read_documents(path)
        except InvalidSpec as exc:
            problems.append(str(exc))
            continue
        for index, doc in documents:
            try:
                _load(inputs, path, index, doc, pools_only)
            except InvalidSpec as exc:
                label = object_label(doc) if doc.get("kind") in KINDS else f"document {index}"
                problems.append(f"{path}: {label}: {exc}")
    names = [p.name for p in inputs.pools]
    problems += [f"GPUPool {n} is given more than once" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise InvalidInputs(problems)
    return inputs
