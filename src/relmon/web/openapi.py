"""The OpenAPI 3.1 document of the dialer API, generated from the models.

The answers' schemas come from the same pydantic models as ``schemas/*.json``
(:class:`SuppressionAnswer`, :class:`SuppressionRecord`); the request, the batch answer, the
errors and ``GET /supporters/{id}`` (``Engine.explain``) are described by the models below.
``relmon schemas export`` writes it to ``schemas/openapi.json`` (committed; a unit test
fails on drift) and the worker serves it at ``GET /openapi.json``, behind the API token
like every route but the health checks. tests/unit/test_openapi.py checks real answers of
the API against it and validates it with openapi-spec-validator.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from relmon.domain.outputs import SuppressionAnswer, SuppressionRecord
from relmon.web.api import MAX_BATCH, MAX_ID_LENGTH

API_VERSION = "1.0.0"  # bump when a route or an answer changes shape
REF = "#/components/schemas/{model}"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckRequest(_Doc):
    """The supporters to check at once (duplicates are answered once)."""

    supporter_ids: list[str] = Field(max_length=MAX_BATCH)


class CheckResponse(_Doc):
    """One answer per distinct supporter id of the request."""

    results: dict[str, SuppressionAnswer]


class Error(_Doc):
    """Every 4xx and 5xx answer: a code to branch on and a sentence for people."""

    error: str = Field(examples=["not_ready", "bad_supporter_id", "unauthorized"])
    detail: str


class Status(_Doc):
    """A health answer."""

    status: Literal["ok", "ready"]


class Contribution(_Doc):
    """One event's share of a score, decayed to ``as_of``."""

    event_id: str
    type: str
    at: AwareDatetime | None
    weight: float
    value: float


class ScoreDetail(_Doc):
    score: float
    half_life_days: float
    contributions: list[Contribution]


class Mandate(_Doc):
    action: str
    frequency: str
    amount_cents: int
    at: AwareDatetime | None
    loyal_from: AwareDatetime | None
    event_id: str


class ConsentEntry(_Doc):
    action: str
    at: AwareDatetime | None
    event_id: str


class RecentCall(_Doc):
    event_id: str
    call_id: str
    campaign_id: str
    campaign_purpose: str
    partner_id: str
    agent_id: str | None
    outcome: str
    reached: bool
    at: AwareDatetime | None


class SupporterExplanation(_Doc):
    """A supporter's scores, the contributions behind them and the deciding facts."""

    supporter_id: str
    as_of: AwareDatetime | None
    policy_version: str
    fatigue: ScoreDetail
    irritation_risk: ScoreDetail
    loyal: bool
    mandates: dict[str, Mandate]
    consent: dict[str, ConsentEntry]
    recent_calls: list[RecentCall]
    decision: SuppressionRecord


MODELS: list[type[BaseModel]] = [
    SuppressionAnswer,
    CheckRequest,
    CheckResponse,
    SupporterExplanation,
    Error,
    Status,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


ERRORS = {
    "400": "malformed request: bad supporter id, not JSON, wrong shape",
    "401": "RELMON_API_TOKEN is set and the request has no valid `Authorization: Bearer`",
    "408": "the request's headers or body did not arrive in time (RELMON_WEB_*_TIMEOUT_S)",
    "413": "more than 100,000 ids, or a body over RELMON_WEB_MAX_BODY_BYTES",
    "502": "the worker owning the supporter did not answer the forwarded request",
    "503": "state recovering or rebalancing (Retry-After: 1; do not dial meanwhile), the "
    "request took longer than RELMON_WEB_REQUEST_TIMEOUT_S, or too many connections",
}


def _errors(*codes: str) -> dict[str, Any]:
    out = {}
    for code in codes:
        response = _json("Error", ERRORS[code])
        if code == "503":
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
        out[code] = response
    return out


def _supporter_param() -> dict[str, Any]:
    return {
        "name": "supporter_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-ready dict, stable for the drift check)."""
    _, defs = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    schemas = defs.get("$defs", {})
    schemas["CheckRequest"]["properties"]["supporter_ids"]["items"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
    }
    open_route: list[dict[str, list[str]]] = []  # no token needed
    single = ("400", "401", "502", "503")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relmon dialer API",
            "version": API_VERSION,
            "description": (
                "May this supporter be called now? Answers come from the worker's "
                "current-decision view; any worker answers for every supporter (requests "
                "for supporters of other workers' partitions are forwarded). A 503 means "
                "the answer is not known right now: retry, and do not dial meanwhile."
            ),
        },
        "servers": [{"url": "http://localhost:6066", "description": "a local worker"}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RELMON_API_TOKEN; when it is unset no route needs a token",
                }
            },
        },
        "paths": {
            "/suppressions/{supporter_id}": {
                "get": {
                    "operationId": "getSuppression",
                    "summary": "May this supporter be called now, and if not why and until when",
                    "parameters": [_supporter_param()],
                    "responses": {
                        "200": _json("SuppressionAnswer", "the supporter's current decision"),
                        **_errors(*single),
                    },
                }
            },
            "/suppressions/check": {
                "post": {
                    "operationId": "checkSuppressions",
                    "summary": f"Answers for up to {MAX_BATCH:,} supporters at once",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CheckRequest")}},
                    },
                    "responses": {
                        "200": _json("CheckResponse", "one answer per distinct id"),
                        **_errors("400", "401", "408", "413", "502", "503"),
                    },
                }
            },
            "/supporters/{supporter_id}": {
                "get": {
                    "operationId": "explainSupporter",
                    "summary": "Scores, the contributions behind them and the deciding facts",
                    "parameters": [_supporter_param()],
                    "responses": {
                        "200": _json("SupporterExplanation", "the supporter explained"),
                        **_errors(*single),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format)",
                    "responses": {
                        "200": {
                            "description": "the worker's metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors("401"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers",
                    "security": open_route,
                    "responses": {"200": _json("Status", "alive")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: state recovered, no rebalance running",
                    "security": open_route,
                    "responses": {
                        "200": _json("Status", "ready to answer"),
                        "503": _json("Error", "recovering or rebalancing"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "the OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors("401"),
                    },
                }
            },
        },
    }


def install(web_app: web.Application) -> None:
    """Serve the document at ``GET /openapi.json`` (behind the token when one is set)."""
    body = web.json_response(document()).body

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    web_app.router.add_get("/openapi.json", openapi)
