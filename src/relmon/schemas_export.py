"""JSON Schemas of the contract's types, generated from the pydantic models.

``schemas/`` holds one file per input event and output type, and ``openapi.json``, the
OpenAPI 3.1 document of the dialer API (:mod:`relmon.web.openapi`); ``relmon schemas
export`` writes them and ``relmon schemas check`` (and a unit test) fails when they differ
from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from relmon.domain.events import (
    CallOutcome,
    ConsentChange,
    DonationChange,
    EmailEngagement,
    InputEvent,
)
from relmon.domain.outputs import Alert, DeadLetter, SuppressionAnswer, SuppressionRecord

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_INPUTS: dict[str, type[BaseModel]] = {
    "call_outcome": CallOutcome,
    "consent_change": ConsentChange,
    "email_engagement": EmailEngagement,
    "donation_change": DonationChange,
}
_OUTPUTS: dict[str, type[BaseModel]] = {
    "suppression_record": SuppressionRecord,
    "alert": Alert,
    "dead_letter": DeadLetter,
    "suppression_answer": SuppressionAnswer,
}


def schema_documents() -> dict[str, dict[str, Any]]:
    """File stem → JSON Schema, for every input event, their union and every output."""
    docs: dict[str, dict[str, Any]] = {}
    for name, model in _INPUTS.items():
        docs[name] = _with_header(model.model_json_schema(mode="validation"), name)
    union = TypeAdapter(InputEvent).json_schema(mode="validation")
    union["title"] = "InputEvent"
    docs["input_event"] = _with_header(union, "input_event")
    for name, model in _OUTPUTS.items():
        docs[name] = _with_header(model.model_json_schema(mode="serialization"), name)
    return docs


def _with_header(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$schema": DRAFT, "$id": f"{name}.json", **schema}


def render(doc: dict[str, Any]) -> str:
    """The exact text written for one schema (stable key order, trailing newline)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


OPENAPI = "openapi.json"


def files() -> dict[str, str]:
    """File name → exact text, for every JSON Schema and the OpenAPI document."""
    from relmon.web.openapi import document  # the web layer, only when exporting

    out = {f"{name}.json": render(doc) for name, doc in schema_documents().items()}
    out[OPENAPI] = render(document())
    return out


def export_schemas(directory: str | Path) -> list[Path]:
    """Write every schema and the OpenAPI document into ``directory``; return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in files().items():
        path = out / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def differences(directory: str | Path) -> list[str]:
    """How ``directory`` differs from the models (empty when it matches)."""
    out = Path(directory)
    problems = []
    expected = files()
    for filename, text in expected.items():
        path = out / filename
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the models")
    if out.is_dir():
        for path in sorted(out.glob("*.json")):
            if path.name not in expected:
                problems.append(f"{path}: no model has this schema any more")
    return problems
