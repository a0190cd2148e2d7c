"""The built-in model catalog: one YAML file per model under data/models/, each the model's
config.json (+ safetensors counts), parsed through facts/hf_config.py like any hub config.

File format (docs/sizing.md, "Catalog data files"): `id`, `configSource` (where the config was
read), `config` (config.json), optional `checkpoint` {parameters by safetensors dtype,
totalBytes, source, commit, derivedOnly: true when no published number confirms the counts} and
`fp8Variant`. File name: the repo id with "/" → "--".
Entries are parsed on first use (a plan reads one model, not all of them).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ..errors import ModeldeployError
from .checkpoint import Checkpoint
from .hf_config import facts_from_hf
from .model import FactsSource, ModelFacts

CATALOG_DIR = "data/models"
_ENTRY_KEYS = {"id", "configSource", "config", "checkpoint", "fp8Variant"}
_CHECKPOINT_KEYS = {"parameters", "totalBytes", "source", "commit", "derivedOnly"}


class CatalogError(ValueError):
    """The catalog data is malformed: a packaging bug, never a user error."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a key given twice in one mapping (a silently lost entry)."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` keys are overridden by design
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise CatalogError(
                f"line {key_node.start_mark.line + 1}: duplicate key {key!r}"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class CatalogEntry:
    """One data file, validated but not yet parsed into facts."""

    id: str
    config_source: str
    config: Mapping[str, Any]
    checkpoint: Checkpoint | None = None
    fp8_variant: str | None = None

    def facts(self) -> ModelFacts:
        try:
            facts = facts_from_hf(self.id, self.config, self.checkpoint, source=FactsSource.CATALOG)
        except ModeldeployError as exc:
            raise CatalogError(f"{self.id}: {exc}") from exc
        return facts.model_copy(update={"fp8_variant": self.fp8_variant}) if self.fp8_variant else facts


def _checkpoint(origin: str, raw: Any) -> Checkpoint | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - _CHECKPOINT_KEYS:
        raise CatalogError(f"{origin}: checkpoint must be a mapping of {', '.join(sorted(_CHECKPOINT_KEYS))}")
    counts = raw.get("parameters")
    if counts is not None and not (
        isinstance(counts, Mapping) and all(isinstance(n, int) and n >= 0 for n in counts.values())
    ):
        raise CatalogError(f"{origin}: checkpoint.parameters must map safetensors dtypes to counts")
    total = raw.get("totalBytes")
    if total is not None and (not isinstance(total, int) or total <= 0):
        raise CatalogError(f"{origin}: checkpoint.totalBytes must be a positive integer")
    if counts is None and total is None:
        raise CatalogError(f"{origin}: checkpoint needs parameters or totalBytes")
    derived = raw.get("derivedOnly", False)
    if not isinstance(derived, bool) or (derived and not counts):
        raise CatalogError(f"{origin}: checkpoint.derivedOnly must be true or false, and true only beside the "
                           "parameters tools/checkpoint_inventory.py derived")
    return Checkpoint(parameters=dict(counts) if counts else None, total_bytes=total, commit=raw.get("commit"),
                      derived_only=derived)


def parse_entry(data: Any, origin: str) -> CatalogEntry:
    """Validate one data file's content. Raises CatalogError naming the file and key."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"{origin}: expected a mapping with id, configSource and config")
    unknown = set(data) - _ENTRY_KEYS
    missing = {"id", "configSource", "config"} - set(data)
    if unknown or missing:
        raise CatalogError(f"{origin}: unknown keys {sorted(unknown)} / missing keys {sorted(missing)}")
    repo_id = data["id"]
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise CatalogError(f"{origin}: id {repo_id!r} is not a Hugging Face repo id (org/name)")
    if not isinstance(data["config"], Mapping):
        raise CatalogError(f"{origin}: config must be a mapping (the config.json)")
    if not isinstance(data["configSource"], str) or not data["configSource"].strip():
        raise CatalogError(f"{origin}: configSource must say where the config was read")
    variant = data.get("fp8Variant")
    return CatalogEntry(repo_id, data["configSource"], dict(data["config"]), _checkpoint(origin, data.get("checkpoint")),
                        str(variant) if variant else None)


class Catalog:
    """Model facts keyed by Hugging Face repo id; lookups ignore case. Parsed lazily, once."""

    def __init__(self, entries: Iterable[CatalogEntry | ModelFacts]) -> None:
        self._by_id: dict[str, CatalogEntry | ModelFacts] = {}
        self._by_bare: dict[str, list[str]] = {}
        for entry in entries:
            key = entry.id.lower()
            if key in self._by_id:
                raise CatalogError(f"model {entry.id} is listed twice (ids ignore case)")
            self._by_id[key] = entry
            self._by_bare.setdefault(key.rsplit("/", 1)[-1], []).append(key)
        for entry in self._by_id.values():
            if entry.fp8_variant and entry.fp8_variant.lower() not in self._by_id:
                raise CatalogError(f"model {entry.id}: fp8Variant {entry.fp8_variant} is not in the catalog")

    @classmethod
    def from_files(cls, files: Iterable[tuple[str, str]]) -> Catalog:
        """(origin, YAML text) pairs → Catalog; the id must match the file name."""
        entries = []
        for origin, text in files:
            try:
                data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
            except yaml.YAMLError as exc:
                raise CatalogError(f"{origin}: invalid YAML: {exc}") from exc
            entry = parse_entry(data, origin)
            expected = entry.id.replace("/", "--") + ".yaml"
            if not origin.endswith(expected):
                raise CatalogError(f"{origin}: id {entry.id} belongs in a file named {expected}")
            entries.append(entry)
        return cls(entries)

    def _facts(self, key: str) -> ModelFacts:
        entry = self._by_id[key]
        if isinstance(entry, CatalogEntry):
            entry = self._by_id[key] = entry.facts()
        return entry

    def get(self, name: str) -> ModelFacts | None:
        """Facts by repo id, or by bare name (the part after the slash) when unambiguous."""
        key = name.strip().lower()
        if key in self._by_id:
            return self._facts(key)
        if "/" in key:
            return None
        matches = self._by_bare.get(key, [])
        return self._facts(matches[0]) if len(matches) == 1 else None

    def ambiguous(self, name: str) -> list[str]:
        """Repo ids a bare name could mean when it means more than one."""
        matches = self._by_bare.get(name.strip().lower(), []) if "/" not in name else []
        return sorted(self._by_id[m].id for m in matches) if len(matches) > 1 else []

    def similar(self, name: str, limit: int = 3) -> list[str]:
        """Catalog repo ids a misspelt or partial name most likely means, best first.

        Compared on the part after the slash, lower-cased: a name inside an id or an id inside
        the name (`llama-3.3-70b` in `Llama-3.3-70B-Instruct`) first, then difflib's ratio
        (cutoff 0.6, difflib's own default); the same organisation breaks ties.
        """
        org, _, bare = name.strip().lower().rpartition("/")
        ranked = []
        for key in self._by_id:
            their_org, _, theirs = key.rpartition("/")
            inside = len(bare) >= 4 and (bare in theirs or theirs in bare)
            ratio = difflib.SequenceMatcher(None, bare, theirs).ratio()
            if inside or ratio >= 0.6:
                ranked.append((not inside, -ratio, org != their_org, key))
        return [self._by_id[key].id for *_, key in sorted(ranked)[:limit]]

    def entries(self) -> list[ModelFacts]:
        """Every entry, sorted by repo id (case-insensitively)."""
        return [self._facts(k) for k in sorted(self._by_id)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.strip().lower()
        return key in self._by_id or ("/" not in key and len(self._by_bare.get(key, [])) == 1)

    def __len__(self) -> int:
        return len(self._by_id)


@cache
def load_catalog() -> Catalog:
    """The packaged catalog: every data/models/*.yaml, validated once per process."""
    folder = resources.files("modeldeploy").joinpath(CATALOG_DIR)
    files = sorted((f.name, f.read_text(encoding="utf-8")) for f in folder.iterdir() if f.name.endswith(".yaml"))
    return Catalog.from_files((f"{CATALOG_DIR}/{name}", text) for name, text in files)
