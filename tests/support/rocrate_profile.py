"""A checker of the MUST requirements of the Workflow Run Crate profile 0.5 and those it inherits.

Each requirement names the text it comes from:

- RO-Crate 1.1, https://w3id.org/ro/crate/1.1 (root-data-entity.html, data-entities.html);
- Workflow RO-Crate 1.0, https://w3id.org/workflowhub/workflow-ro-crate/1.0;
- Process Run Crate 0.5, https://w3id.org/ro/wfrun/process/0.5 ("Requirements" table);
- Workflow Run Crate 0.5, https://w3id.org/ro/wfrun/workflow/0.5 ("Overview", "Requirements").

The SHACL shapes of crs4's rocrate-validator (profiles ro-crate/must, workflow-ro-crate/must,
process-run-crate/must, workflow-run-crate/must) were read to confirm the list. Only the
metadata's structure is checked (no RDF expansion): ids as written, types as compact names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
TOOL_TYPES = {"SoftwareApplication", "SoftwareSourceCode", "ComputationalWorkflow"}
ACTION_TYPES = {"CreateAction", "ActivateAction", "UpdateAction"}


def _types(entity: dict[str, Any]) -> set[str]:
    value = entity.get("@type", [])
    return {value} if isinstance(value, str) else set(value)


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [i["@id"] for i in items if isinstance(i, dict) and "@id" in i]


class Crate:
    """The entities of a crate's metadata, by id."""

    def __init__(self, metadata: dict[str, Any], folder: Path | None) -> None:
        self.metadata = metadata
        self.folder = folder
        graph = metadata.get("@graph", [])
        self.entities = {e.get("@id"): e for e in graph if isinstance(e, dict)}
        descriptor = self.entities.get("ro-crate-metadata.json", {})
        about = _ids(descriptor.get("about"))
        self.root = self.entities.get(about[0], {}) if about else {}

    def get(self, identifier: str) -> dict[str, Any]:
        return self.entities.get(identifier, {})


def _flat(crate: Crate) -> bool:
    return (
        "@context" in crate.metadata
        and isinstance(crate.metadata.get("@graph"), list)
        and all("@id" in e and "@type" in e for e in crate.metadata["@graph"])
    )


def _descriptor(crate: Crate) -> bool:
    entity = crate.get("ro-crate-metadata.json")
    return "CreativeWork" in _types(entity) and len(_ids(entity.get("about"))) == 1


def _descriptor_conforms(crate: Crate) -> bool:
    return "https://w3id.org/ro/crate/1.1" in _ids(
        crate.get("ro-crate-metadata.json").get("conformsTo")
    )


def _root(crate: Crate) -> bool:
    return "Dataset" in _types(crate.root) and str(crate.root.get("@id", "")).endswith("/")


def _date(crate: Crate) -> bool:
    return bool(ISO_DATE.match(str(crate.root.get("datePublished", ""))))


def _data_entities(crate: Crate) -> list[dict[str, Any]]:
    return [
        e
        for e in crate.entities.values()
        if e is not crate.root
        and e.get("@id") != "ro-crate-metadata.json"
        and _types(e) & {"File", "Dataset"}
    ]


def _data_linked(crate: Crate) -> bool:
    parts = set(_ids(crate.root.get("hasPart", [])))
    return all(e["@id"] in parts for e in _data_entities(crate))


def _data_present(crate: Crate) -> bool:
    if crate.folder is None:
        return True
    local = [e["@id"] for e in _data_entities(crate) if not re.match(r"^[a-z]+:|^#", e["@id"])]
    return all((crate.folder / i).exists() for i in local)


def _main_workflow(crate: Crate) -> dict[str, Any]:
    main = _ids(crate.root.get("mainEntity"))
    return crate.get(main[0]) if main else {}


def _main_types(crate: Crate) -> bool:
    return {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= _types(_main_workflow(crate))


def _main_language(crate: Crate) -> bool:
    languages = _ids(_main_workflow(crate).get("programmingLanguage"))
    return bool(languages) and all("ComputerLanguage" in _types(crate.get(i)) for i in languages)


def _license(crate: Crate) -> bool:
    value = crate.root.get("license")
    return bool(isinstance(value, str) and value) or bool(_ids(value))


def _conforms(prefix: str) -> Callable[[Crate], bool]:
    def check(crate: Crate) -> bool:
        ids = _ids(crate.root.get("conformsTo", []))
        return any(i.startswith(prefix) and "CreativeWork" in _types(crate.get(i)) for i in ids)

    return check


def _actions(crate: Crate) -> list[dict[str, Any]]:
    return [e for e in crate.entities.values() if _types(e) & ACTION_TYPES]


def _instruments(crate: Crate) -> bool:
    for action in _actions(crate):
        tools = _ids(action.get("instrument"))
        if not tools or not all(_types(crate.get(t)) & TOOL_TYPES for t in tools):
            return False
    return True


def _workflow_run(crate: Crate) -> bool:
    main = _main_workflow(crate).get("@id")
    return any(
        "CreateAction" in _types(a) and main in _ids(a.get("instrument")) for a in _actions(crate)
    )


def _parameters(crate: Crate) -> bool:
    for entity in crate.entities.values():
        if "ComputationalWorkflow" not in _types(entity):
            continue
        for key in ("input", "output"):
            if not all(
                "FormalParameter" in _types(crate.get(i)) for i in _ids(entity.get(key, []))
            ):
                return False
    return True


def _parameter_types(crate: Crate) -> bool:
    formal = [e for e in crate.entities.values() if "FormalParameter" in _types(e)]
    return all(e.get("additionalType") for e in formal)


REQUIREMENTS: list[tuple[str, str, Callable[[Crate], bool]]] = [
    (
        "RO-Crate 1.1 §metadata: flattened JSON-LD, every entity with @id and @type",
        "ro-crate",
        _flat,
    ),
    (
        "RO-Crate 1.1 root-data-entity §descriptor: ro-crate-metadata.json is a CreativeWork "
        "about the root",
        "ro-crate",
        _descriptor,
    ),
    (
        "RO-Crate 1.1 root-data-entity §descriptor: conformsTo https://w3id.org/ro/crate/1.1",
        "ro-crate",
        _descriptor_conforms,
    ),
    (
        "RO-Crate 1.1 root-data-entity: the root is a Dataset whose @id ends with /",
        "ro-crate",
        _root,
    ),
    (
        "RO-Crate 1.1 root-data-entity: datePublished in ISO 8601",
        "ro-crate",
        _date,
    ),
    (
        "RO-Crate 1.1 data-entities: every File/Dataset is linked from the root by hasPart",
        "ro-crate",
        _data_linked,
    ),
    (
        "RO-Crate 1.1 data-entities: local data entities are in the crate's payload",
        "ro-crate",
        _data_present,
    ),
    (
        "Workflow RO-Crate 1.0: the root's mainEntity is a File, SoftwareSourceCode and "
        "ComputationalWorkflow",
        "workflow-ro-crate",
        _main_types,
    ),
    (
        "Workflow RO-Crate 1.0: the main workflow names its programmingLanguage (ComputerLanguage)",
        "workflow-ro-crate",
        _main_language,
    ),
    (
        "Workflow RO-Crate 1.0: the crate has a license",
        "workflow-ro-crate",
        _license,
    ),
    (
        "Process Run Crate 0.5 Requirements, Dataset conformsTo: the process profile permalink",
        "process-run-crate",
        _conforms("https://w3id.org/ro/wfrun/process/"),
    ),
    (
        "Process Run Crate 0.5 Requirements, CreateAction instrument: an executed tool "
        "(SoftwareApplication, SoftwareSourceCode or ComputationalWorkflow)",
        "process-run-crate",
        _instruments,
    ),
    (
        "Workflow Run Crate 0.5 Requirements, Dataset conformsTo: the workflow profile permalink",
        "workflow-run-crate",
        _conforms("https://w3id.org/ro/wfrun/workflow/"),
    ),
    (
        "Workflow Run Crate 0.5 Overview: a CreateAction of the main workflow (its instrument)",
        "workflow-run-crate",
        _workflow_run,
    ),
    (
        "Workflow Run Crate 0.5 Overview: workflow input/output are FormalParameter entities",
        "workflow-run-crate",
        _parameters,
    ),
    (
        "Workflow Run Crate 0.5 Requirements, FormalParameter additionalType: MUST",
        "workflow-run-crate",
        _parameter_types,
    ),
]


def violations(metadata: dict[str, Any], folder: Path | None = None) -> list[str]:
    """The MUST requirements the crate breaks (empty when it conforms)."""
    crate = Crate(metadata, folder)
    return [text for text, _profile, check in REQUIREMENTS if not check(crate)]
