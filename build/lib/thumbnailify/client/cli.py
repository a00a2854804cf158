"""`thumbnailify`: upload files and folders and fetch their thumbnails; status, list and delete.

    thumbnailify upload PATH... [--out DIR] [--size NAME] [--jobs N] [--url URL] [--api-key KEY]
    thumbnailify status ID | list [--state STATE] [--limit N] | delete ID...

URL and key also from THUMBNAILIFY_URL and THUMBNAILIFY_API_KEY. Exit status: 0 when everything
worked, 1 when any file (or id) failed, 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from thumbnailify.client import calls
from thumbnailify.client.batch import Batch, ThumbnailWriter, collect
from thumbnailify.client.media import BY_EXTENSION
from thumbnailify.client.report import LiveReport, PlainReport, summary
from thumbnailify.client.session import ApiError, Client

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_JOBS = 4
PIPE_WIDTH = 4096


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", default=os.environ.get("THUMBNAILIFY_URL") or DEFAULT_URL,
                        help=f"the service (env THUMBNAILIFY_URL; default {DEFAULT_URL})")
    server.add_argument("--api-key", metavar="KEY", default=os.environ.get("THUMBNAILIFY_API_KEY") or None,
                        help="sent as a Bearer token (env THUMBNAILIFY_API_KEY)")

    parser = argparse.ArgumentParser(prog="thumbnailify", description="Client of a Thumbnailify service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", parents=[server], help="upload files and folders, fetch the thumbnails",
                                 description="Upload files and folders (recursively, accepted types only), wait "
                                             "for each result and write each thumbnail into --out.")
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    upload.add_argument("--out", type=Path, metavar="DIR",
                        help="write each thumbnail here as <stem>.<ext> (folders' structure kept); "
                             "without it nothing is written")
    upload.add_argument("--size", metavar="NAME", help="which of the server's thumbnail sizes (default: its first)")
    upload.add_argument("--jobs", type=_positive, default=DEFAULT_JOBS, metavar="N",
                        help=f"files on their way at once (default {DEFAULT_JOBS})")
    upload.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="how long to wait for each result (default 600)")

    status = commands.add_parser("status", parents=[server], help="one media's status, as JSON")
    status.add_argument("media_id", metavar="ID")

    listing = commands.add_parser("list", parents=[server], help="media on the server, newest first")
    listing.add_argument("--state", choices=calls.STATES)
    listing.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most this many (default 50)")

    delete = commands.add_parser("delete", parents=[server], help="delete media: upload, thumbnails and state")
    delete.add_argument("media_ids", nargs="+", metavar="ID")
    return parser


def _upload(args: argparse.Namespace, client: Client, console: Console) -> int:
    sources, missing = collect(args.paths)
    if not sources and not missing:
        print("thumbnailify: nothing to upload; accepted: " + " ".join(BY_EXTENSION), file=sys.stderr)
        return 1
    writer = ThumbnailWriter(args.out) if args.out else None
    fancy = console.is_terminal
    with LiveReport(console, len(sources)) if fancy else PlainReport(console) as report:
        results = Batch(client, report, writer, args.size, args.timeout).run(sources, args.jobs)
    results = missing + results
    summary(console, results, fancy=fancy)
    return 0 if all(result.ok for result in results) else 1


def _status(args: argparse.Namespace, client: Client, console: Console) -> int:
    body = client.status(args.media_id)
    if console.is_terminal:
        console.print_json(data=body)
    else:
        print(json.dumps(body, indent=2))
    return 0


def _list(args: argparse.Namespace, client: Client, console: Console) -> int:
    items = []
    for item in client.items(args.state, page=min(args.limit, 1000)):
        if len(items) >= args.limit:
            break
        items.append(item)
    if not console.is_terminal:
        for item in items:
            print("\t".join((item["media_id"], item["state"], item["media_type"], item["created_at"],
                             item["message"])))
        return 0
    table = Table("Media ID", "State", "Type", "Created", "Message")
    for item in items:
        table.add_row(*(Text(item[key]) for key in ("media_id", "state", "media_type", "created_at", "message")))
    console.print(table)
    return 0


def _delete(args: argparse.Namespace, client: Client, console: Console) -> int:
    failed = 0
    for media_id in args.media_ids:
        try:
            client.delete(media_id)
        except ApiError as exc:
            failed += 1
            print(f"thumbnailify: {media_id}: {exc}", file=sys.stderr)
        else:
            print(f"deleted {media_id}")
    return 1 if failed else 0


COMMANDS = {"upload": _upload, "status": _status, "list": _list, "delete": _delete}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = Client(args.url, args.api_key)
    # Through a pipe no width is known: rows are not wrapped, so each stays one line for grep.
    console = Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
    try:
        return COMMANDS[args.command](args, client, console)
    except ApiError as exc:
        print(f"thumbnailify: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("thumbnailify: interrupted", file=sys.stderr)
        sys.stdout.flush()
        # Upload threads may be waiting on the server for minutes; an interrupted run ends now
        # (the server drops an upload cut off half-way).
        os._exit(130)
