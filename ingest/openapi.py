"""The OpenAPI 3.1 document of ``/v1``, served at ``GET /v1/openapi.json`` (no token).

``openapi.json`` beside this module is the document; the registration's and the
checkout's body schemas are filled in from the pydantic models that validate them, so
the two cannot drift apart.
``tests/integration/test_openapi.py`` fails when a route has no operation (or an
operation no route), and when a documented object's properties differ from what is
served; schemathesis drives the live API from this document.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ingest.checkout_request import CheckoutRequest
from ingest.registration import Registration

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")
# Routes of /v1 answered without a bearer token (by route name).
PUBLIC_ROUTES = frozenset({"openapi"})


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(DOCUMENT_PATH.read_bytes())
    registration = Registration.model_json_schema(ref_template="#/components/schemas/{model}")
    registration.pop("title", None)
    schemas = document["components"]["schemas"]
    schemas["Registration"] = registration
    checkout = CheckoutRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    checkout.pop("title", None)
    # Nested models (the customer) become components of their own.
    schemas.update(checkout.pop("$defs", {}))
    schemas["CheckoutRequest"] = checkout
    return document


def add_openapi_route(api: web.Application) -> None:
    api.router.add_get("/openapi.json", serve_openapi, name="openapi")


async def serve_openapi(_request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")
