"""The OpenAPI spec matches the code: every route is documented, and every documented one exists.
(schemathesis against the running service is in tests/system/test_openapi.py.)"""

from __future__ import annotations

import yaml

from thumbnailify.server.app import create_app
from thumbnailify.server.ops import OPENAPI_FILE
from thumbnailify.settings import Settings

SPEC = yaml.safe_load(OPENAPI_FILE.read_text())


def test_every_route_is_in_the_spec_and_back() -> None:
    app = create_app(Settings())
    routes = {(route.method.lower(), route.resource.canonical) for route in app.router.routes()}
    documented = {(method, path) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}
    # aiohttp answers HEAD for every GET by itself: only a HEAD of its own (tus) must be documented.
    assert {r for r in routes if r[0] != "head" or ("get", r[1]) not in routes} == documented - {
        r for r in documented if r[0] == "head" and ("get", r[1]) in documented}
