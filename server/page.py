"""GET /: the web page, and GET /static/{name}: its script, style and icon (server/static/).

Everything the page needs is served from here (it works offline, no CDN). The files are read
once at start. The page names each asset with its fingerprint (`?v=<etag>`), so assets fetched
under their current fingerprint are cached for good and the page itself is revalidated each
time: a new version is picked up at the next load, never half old and half new.

The page and its assets hold no data and are open without an API key (see middleware.auth):
the page asks for the key itself and sends it with every API call it makes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from server.errors import ApiError
from server.images import etag_matches

STATIC_DIR = Path(__file__).with_name("static")
PAGE_FILE = "index.html"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Only our own files: no inline script or style, no other origin; thumbnails arrive as blobs
# (fetched with the key when one is set); nothing may frame the page.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
REVALIDATE = "no-cache"
FOREVER = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, suffix: str) -> Asset:
    return Asset(body, TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])


class Site:
    """The page and its assets, loaded from a folder."""

    def __init__(self, folder: Path) -> None:
        self.assets = {
            path.name: _asset(path.read_bytes(), path.suffix)
            for path in sorted(folder.iterdir())
            if path.suffix in TYPES and path.name != PAGE_FILE
        }
        html = (folder / PAGE_FILE).read_text()
        for name, asset in self.assets.items():
            html = html.replace(f'"/static/{name}"', f'"/static/{name}?v={asset.etag}"')
        self.page = _asset(html.encode(), ".html")


SITE = web.AppKey("site", Site)


def _answer(request: web.Request, asset: Asset, headers: dict[str, str]) -> web.Response:
    headers = headers | {hdrs.ETAG: f'"{asset.etag}"'}
    if etag_matches(request, asset.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8"
                        if asset.content_type.startswith("text/") else None, headers=headers)


async def page(request: web.Request) -> web.Response:
    return _answer(request, request.app[SITE].page, {
        hdrs.CACHE_CONTROL: REVALIDATE,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Referrer-Policy": "no-referrer",
    })


async def static(request: web.Request) -> web.Response:
    asset = request.app[SITE].assets.get(request.match_info["name"])
    if asset is None:
        raise ApiError(404, "no such file")
    current = request.query.get("v") == asset.etag
    return _answer(request, asset, {hdrs.CACHE_CONTROL: FOREVER if current else REVALIDATE})


def add_routes(app: web.Application) -> None:
    app[SITE] = Site(STATIC_DIR)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
