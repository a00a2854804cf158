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
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }
    documented = {(method, path) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}
    assert routes == documented
