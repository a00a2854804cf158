#!/usr/bin/env python3
"""The ingest baseline: a bare aiohttp handler that takes a base64 upload and nothing more.

    .venv/bin/python -m bench.bare_ingest --port 8765 --folder var/bare

POST /images decodes the base64 body, writes the bytes under a temporary name, renames it into
place and answers 202; GET /ready answers 200. No state, no queue, no checks: what any upload
endpoint must at least do, so the server's ingest rate can be read as a ratio of it. Listens on
127.0.0.1 only, without access logs (they would cost CPU the real server does not spend either).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import uuid
from pathlib import Path

from aiohttp import web

FOLDER = web.AppKey("folder", Path)


async def upload(request: web.Request) -> web.Response:
    try:
        data = base64.b64decode(await request.read(), validate=True)
    except binascii.Error:
        return web.json_response({"message": "the body is not base64"}, status=400)
    media_id = uuid.uuid4().hex
    target = request.app[FOLDER] / media_id
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return web.json_response({"media_id": media_id}, status=202)


async def ready(_request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def build_app(folder: Path) -> web.Application:
    app = web.Application(client_max_size=64 << 20)
    app[FOLDER] = folder
    app.router.add_post("/images", upload)
    app.router.add_get("/ready", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    web.run_app(build_app(args.folder), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
