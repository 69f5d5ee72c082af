"""The OpenAPI document: valid 3.1, committed without drift, complete, and true to answers.

Real answers of the API (served on 127.0.0.1 over the small backend of test_api.py) are
validated against the document's schemas, so the document cannot describe an API that is
not there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import SecretStr
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from relmon.schemas_export import render
from relmon.web import openapi
from relmon.web.api import Api, install_routes
from tests.unit.test_api import Backend

COMMITTED = Path(__file__).parents[2] / "schemas" / "openapi.json"
DOC = openapi.document()


def test_the_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1."""
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


def test_the_committed_document_is_the_generated_one() -> None:
    """schemas/openapi.json is what `relmon schemas export` writes now (run it and commit
    the result if this fails)."""
    assert COMMITTED.read_text(encoding="utf-8") == render(DOC)


def app_with(backend: Backend, token: str | None = None) -> web.Application:
    app = web.Application()
    install_routes(app, Api(backend, token=SecretStr(token) if token else None, self_url=""))
    openapi.install(app)
    return app


def test_every_route_served_is_documented_and_every_documented_route_served() -> None:
    """The (method, path) pairs of the worker's API routes equal the document's."""
    app = app_with(Backend())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, ops in DOC["paths"].items() for method in ops}
    assert served == documented


def check(name: str, body: Any) -> None:
    """Validate ``body`` against the document's component schema ``name``."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:openapi#/components/schemas/{name}"}
    errors = list(Draft202012Validator(schema, registry=registry).iter_errors(body))
    assert not errors, [e.message for e in errors]


@pytest.fixture
async def client() -> AsyncIterator[tuple[Backend, httpx.AsyncClient]]:
    backend = Backend()
    backend.suppress("S-1", opt_out=True)
    backend.suppress("S-2")
    server = TestServer(app_with(backend, token="t0ken"), host="127.0.0.1")
    await server.start_server()
    headers = {"Authorization": "Bearer t0ken"}
    base = str(server.make_url(""))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
        yield backend, http
    await server.close()


async def test_real_answers_match_the_documented_schemas(
    client: tuple[Backend, httpx.AsyncClient],
) -> None:
    """A suppressed, a chased and a never-seen supporter's answers, the batch check, the
    explanation, health, errors (400, 401, 503) and the document itself all validate
    against the schemas the document gives for them."""
    backend, http = client
    for sid in ("S-1", "S-2", "S-never"):
        answer = await http.get(f"/suppressions/{sid}")
        assert answer.status_code == 200
        check("SuppressionAnswer", answer.json())
        explained = await http.get(f"/supporters/{sid}")
        assert explained.status_code == 200
        check("SupporterExplanation", explained.json())
    request = {"supporter_ids": ["S-1", "S-2", "S-never", "S-1"]}
    check("CheckRequest", request)
    batch = await http.post("/suppressions/check", content=orjson.dumps(request))
    check("CheckResponse", batch.json())
    check("Status", (await http.get("/healthz")).json())
    check("Status", (await http.get("/readyz")).json())
    bad = await http.get("/suppressions/" + "x" * 65)
    assert bad.status_code == 400
    check("Error", bad.json())
    anonymous = await http.get("/suppressions/S-1", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    check("Error", anonymous.json())
    backend.ready = False
    recovering = await http.get("/suppressions/S-1")
    assert recovering.status_code == 503
    check("Error", recovering.json())
    served = await http.get("/openapi.json")
    assert served.json() == DOC


async def test_the_document_is_behind_the_token_like_the_api(
    client: tuple[Backend, httpx.AsyncClient],
) -> None:
    """GET /openapi.json needs the token when one is set (only health checks are open)."""
    _, http = client
    assert (await http.get("/openapi.json", headers={"Authorization": ""})).status_code == 401
    assert (await http.get("/openapi.json")).status_code == 200
