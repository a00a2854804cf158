"""GET /: the web page, and GET /static/{name}: its script, style and icon (server/static/);
GET /static/modules/{name}: the script's ES modules (server/static/modules/).

Everything the page needs is served from here (it works offline, no CDN). The files are read
once at start. The page names each asset with its fingerprint (`?v=<etag>`), so assets fetched
under their current fingerprint are cached for good and the page itself is revalidated each
time: a new version is picked up at the next load, never half old and half new. A module's
imports of its siblings (`from "./api.js"`) are served rewritten to their fingerprinted URLs,
and a module's fingerprint is that of the text served, so it changes with any module it imports.

The page and its assets hold no data and are open without an API key (see server/http/auth.py):
the page asks for the key itself and sends it with every API call it makes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.images import etag_matches

STATIC_DIR = Path(__file__).with_name("static")
PAGE_FILE = "index.html"
MODULES = "modules"  # the subfolder of the page's ES modules
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


# A static import or re-export of a sibling module: `from "./x.js"`, `import "./x.js"`.
SIBLING_IMPORT = re.compile(r"""\b(from|import)(\s*)(["'])\./([\w-]+\.js)\3""")


def _modules(folder: Path) -> dict[str, Asset]:
    """The modules, keyed `modules/<name>`, each importing its siblings under their fingerprints."""
    sources = {path.name: path.read_text() for path in sorted(folder.glob("*.js"))}
    modules: dict[str, Asset] = {}

    def load(name: str, importers: tuple[str, ...]) -> Asset:
        if name in importers:  # a fingerprint covering its imports cannot cover itself
            cycle = (*importers[importers.index(name):], name)
            raise ValueError(f"{folder}: modules that import each other: {' -> '.join(cycle)}")
        key = f"{MODULES}/{name}"
        if key not in modules:
            def fingerprinted(match: re.Match[str]) -> str:
                keyword, space, quote, imported = match.groups()
                if imported not in sources:
                    raise ValueError(f"{folder / name}: imports {imported}, which is not in {folder}")
                etag = load(imported, (*importers, name)).etag
                return f"{keyword}{space}{quote}./{imported}?v={etag}{quote}"
            modules[key] = _asset(SIBLING_IMPORT.sub(fingerprinted, sources[name]).encode(), ".js")
        return modules[key]

    for name in sources:
        load(name, ())
    return modules


class Site:
    """The page and its assets, loaded from a folder."""

    def __init__(self, folder: Path) -> None:
        self.assets = {
            path.name: _asset(path.read_bytes(), path.suffix)
            for path in sorted(folder.iterdir())
            if path.suffix in TYPES and path.name != PAGE_FILE
        } | _modules(folder / MODULES)
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
    name = request.match_info["name"]
    # A module only under /static/modules/ (an encoded slash could bring one here).
    return _static(request, "" if "/" in name else name)


async def module(request: web.Request) -> web.Response:
    return _static(request, f"{MODULES}/{request.match_info['name']}")


def _static(request: web.Request, name: str) -> web.Response:
    # Only the files loaded at start, by their exact name: nothing else on disk is reachable.
    asset = request.app[SITE].assets.get(name)
    if asset is None:
        raise ApiError(404, "no such file")
    current = request.query.get("v") == asset.etag
    return _answer(request, asset, {hdrs.CACHE_CONTROL: FOREVER if current else REVALIDATE})


def setup(app: web.Application) -> None:
    """The page and its files, read and fingerprinted once."""
    app[SITE] = Site(STATIC_DIR)
