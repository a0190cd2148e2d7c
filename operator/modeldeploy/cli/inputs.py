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
    position: int = 0  # among all ModelDeployment documents of the run, valid or not


@dataclass(frozen=True)
class Refused:
    """A ModelDeployment document the validation refused: its own result (`plan` lists it with
    `failure: InvalidSpec`), while the valid documents beside it are still planned."""

    file: str
    name: str  # metadata.name as written ("" when missing)
    namespace: str | None
    model: str  # spec.model.name as written ("" when missing)
    error: str  # one line: `FILE: ModelDeployment NAME: field: why`
    position: int = 0


@dataclass
class Inputs:
    deployments: list[Loaded] = field(default_factory=list)
    pools: list[GPUPool] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def _written(obj: Any, *keys: str) -> str | None:
    """obj[k1][k2]... when every step is an object and the end a string, else None."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, str) else None


def _refused(path: Path, doc: dict[str, Any], error: str, position: int) -> Refused:
    return Refused(str(path), _written(doc, "metadata", "name") or "", _written(doc, "metadata", "namespace"),
                   _written(doc, "spec", "model", "name") or "", error, position)


def read_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(position, object) of each document of one file. Raises InvalidSpec naming the file."""
    if path.is_dir():  # `plan examples` for `plan examples/*.yaml`: say what to give instead
        raise InvalidSpec(f"{path}: is a directory; give its YAML files ({path / '*.yaml'})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidSpec(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return [(doc.index, doc.body) for doc in load_documents(decode(data))]
    except YamlError as exc:
        raise InvalidSpec(f"{path}: {exc}") from None


def _load(inputs: Inputs, path: Path, doc: dict[str, Any], pools_only: bool) -> None:
    kind = doc.get("kind")
    wanted = ("GPUPool",) if pools_only else KINDS
    if kind not in wanted:
        what = f"kind {kind!r} is not" if kind else "kind is required:"
        where = " (--pools takes GPUPools; give ModelDeployments as FILE arguments)" \
            if pools_only and kind == "ModelDeployment" else ""
        raise InvalidSpec(f"{what} {' or '.join(wanted)}{where}")
    if kind == "GPUPool":
        inputs.pools.append(validate_gpu_pool(doc))
    else:
        position = len(inputs.deployments) + len(inputs.refused)
        inputs.deployments.append(Loaded(str(path), validate_model_deployment(doc), position))


def load_inputs(files: Iterable[Path], pool_files: Iterable[Path] = ()) -> Inputs:
    """Every object of `files` (ModelDeployments and GPUPools mixed) and `pool_files` (GPUPools).

    A ModelDeployment document that fails validation is `Refused`, its own result: the others
    are independent of it and still plan. Anything else wrong (an unreadable file, broken
    YAML, an invalid or repeated GPUPool, a document of another kind) raises InvalidInputs
    listing every such problem, one line each: the pools shape every plan, so nothing is
    planned from them when they are partly wrong.
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
                _load(inputs, path, doc, pools_only)
            except InvalidSpec as exc:
                label = object_label(doc) if doc.get("kind") in KINDS else f"document {index}"
                error = f"{path}: {label}: {exc}"
                if doc.get("kind") == "ModelDeployment" and not pools_only:
                    inputs.refused.append(_refused(path, doc, error, len(inputs.deployments) + len(inputs.refused)))
                else:
                    problems.append(error)
    names = [p.name for p in inputs.pools]
    problems += [f"GPUPool {n} is given more than once" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise InvalidInputs(problems)
    return inputs
