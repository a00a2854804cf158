"""Operating the service, in process: API-key auth guards everything but health, readiness and the
web page. (Metrics of worker processes and JSON log lines are in tests/system/test_operations.py.)"""

from __future__ import annotations

from tests.api.conftest import ApiFactory, raw_request


async def raw_get(port: int, path: str) -> int:
    """The status of a GET of exactly this path (no client-side clean-up of "..")."""
    status, _, _ = await raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return status


async def test_api_key_guards_everything_but_health_ready_and_the_page(make_api: ApiFactory,
                                                                       photos: dict[str, bytes]) -> None:
    service = await make_api(THUMBNAILIFY_AUTH_API_KEY="0123-s3cret")
    assert (await service.get("/health")).status_code == 200
    assert (await service.get("/ready")).status_code == 200
    assert (await service.get("/")).status_code == 200  # the page asks for the key itself
    assert (await service.get("/static/app.js")).status_code == 200
    for path in ("/static/../images", "/static/%2e%2e/images", "/static//images"):
        assert await raw_get(service.port, path) in (401, 404), path
    for method, path in [("GET", "/images"), ("POST", "/images"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                         ("GET", "/events"), ("GET", "/images/9b2d2f8e-7e37-4c1a-9a59-8a3ba1d1f0a4"),
                         ("GET", "/images/9b2d2f8e-7e37-4c1a-9a59-8a3ba1d1f0a4/thumbnail"),
                         ("DELETE", "/images/9b2d2f8e-7e37-4c1a-9a59-8a3ba1d1f0a4")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "0123-s3cret"}):
            response = await service.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == {"message": "missing or wrong API key"}
            assert response.headers["WWW-Authenticate"] == "Bearer"
    service.headers["Authorization"] = "Bearer 0123-s3cret"
    media_id = await service.upload(photos["coffee.jpg"], "image/jpeg")
    assert (await service.wait(media_id))["state"] == "Completed"
    assert (await service.get("/metrics")).status_code == 200
