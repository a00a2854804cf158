"""`thumbnailify`: upload files and folders and fetch their thumbnails; status, list and delete.

    thumbnailify [--url URL] [--api-key KEY] COMMAND ...   (the two options also after COMMAND)
    thumbnailify upload PATH... [--out DIR] [--size NAME] [--jobs N] [--no-skip-existing] [--chunk-size SIZE]
    thumbnailify status ID | list [--state STATE] [--name TEXT] [--limit N] | delete ID... | usage
    thumbnailify similar ID [--distance N] [--limit N]
    thumbnailify keys create --name NAME [--quota-bytes N] [--quota-items N] [--rate N/s] [--priority P]
    thumbnailify keys list | keys revoke NAME | keys rotate NAME [--grace SECONDS]   [--admin-key KEY]

URL and key also from THUMBNAILIFY_URL and THUMBNAILIFY_API_KEY, the admin key from
THUMBNAILIFY_ADMIN_KEY. The `keys` commands call the service's admin API, as any client would: they
need only its URL and the admin key, never the state store's address or credentials, and the
server checks every value once, for the CLI and for scripts alike. Exit status: 0 when everything
worked, 1 when any file (or id) failed or the server could not be reached, 2 for a usage error,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from thumbnailify.client import calls, resumable
from thumbnailify.client.batch import Batch, ThumbnailWriter, collect
from thumbnailify.client.media import BY_EXTENSION
from thumbnailify.client.report import LiveReport, PlainReport, listing_table, summary
from thumbnailify.client.session import ApiError, Client, JsonObject

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_JOBS = 4
PIPE_WIDTH = 4096
USAGE_ERROR = 2
MAX_DISTANCE = 16  # the server's largest ?distance=


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _distance(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_DISTANCE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_DISTANCE}, not {text}")
    return int(text)


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    """Bytes, or with K, M or G (binary: 8M is 8 MiB)."""
    digits, unit = (text[:-1], text[-1].upper()) if text[-1:].isalpha() else (text, "")
    if unit not in SIZE_UNITS or not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: bytes, or a number with K, M or G (8M)")
    return int(digits) * SIZE_UNITS[unit]


def _server_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--url and --api-key, taken before or after the command: the command's own copies have no
    default, so one given before the command is not reset by the command's parser."""
    url = os.environ.get("THUMBNAILIFY_URL") or DEFAULT_URL
    parser.add_argument("--url", default=url if defaults else argparse.SUPPRESS,
                        help=f"the service (env THUMBNAILIFY_URL; default {DEFAULT_URL})")
    parser.add_argument("--api-key", metavar="KEY",
                        default=(os.environ.get("THUMBNAILIFY_API_KEY") or None) if defaults else argparse.SUPPRESS,
                        help="sent as a Bearer token (env THUMBNAILIFY_API_KEY)")


def _parser() -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    _server_options(server, defaults=False)

    parser = argparse.ArgumentParser(prog="thumbnailify", description="Client of a Thumbnailify service.")
    _server_options(parser, defaults=True)
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
    upload.add_argument("--skip-existing", action=argparse.BooleanOptionalAction, default=True,
                        help="ask the server by SHA-256 first and send no file it already has (default: on)")
    upload.add_argument("--chunk-size", type=_size, default=resumable.DEFAULT_CHUNK_BYTES, metavar="SIZE",
                        help="files larger than this go by tus, resumable, in pieces of this size; a run cut "
                             "short is continued by the next one (default 8M)")

    status = commands.add_parser("status", parents=[server], help="one media's status, as JSON")
    status.add_argument("media_id", metavar="ID")

    listing = commands.add_parser("list", parents=[server], help="media on the server, newest first")
    listing.add_argument("--state", choices=calls.STATES)
    listing.add_argument("--name", metavar="TEXT", help="only files whose name contains TEXT (any case)")
    listing.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most this many (default 50)")

    similar = commands.add_parser("similar", parents=[server], help="media that look like one, nearest first",
                                  description="Near-duplicates of a media by perceptual hash: re-encoded, "
                                              "resized, cropped or captioned copies of the same picture.")
    similar.add_argument("media_id", metavar="ID")
    similar.add_argument("--distance", type=_distance, metavar="N",
                         help="at most this many of the hash's 64 bits differ, 0 to 16 (default: the server's, 10)")
    similar.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most this many (default 50)")

    delete = commands.add_parser("delete", parents=[server], help="delete media: upload, thumbnails and state")
    delete.add_argument("media_ids", nargs="+", metavar="ID")

    commands.add_parser("usage", parents=[server], help="this key's client: items and bytes stored, its quotas")
    _keys_parser(commands, server)
    return parser


def _rate(text: str) -> float:
    """Uploads per second: 5, 5/s or 0.5/s."""
    number = text.removesuffix("/s")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: uploads per second, e.g. 5/s") from None
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError(f"{text!r}: a rate is more than 0 and at most 1000000/s")
    return value


def _keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                 server: argparse.ArgumentParser) -> None:
    admin = argparse.ArgumentParser(add_help=False, parents=[server])
    admin.add_argument("--admin-key", metavar="KEY", default=os.environ.get("THUMBNAILIFY_ADMIN_KEY") or None,
                       help="the service's auth.admin_key (env THUMBNAILIFY_ADMIN_KEY)")
    keys = commands.add_parser("keys", help="clients and their keys (the admin API)")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[admin], help="a new client; prints its key, once")
    create.add_argument("--name", required=True)
    create.add_argument("--quota-bytes", type=_size, default=0, metavar="N", help="bytes it may keep (8G-style too)")
    create.add_argument("--quota-items", type=_positive, default=0, metavar="N", help="items it may keep")
    create.add_argument("--rate", type=_rate, default=0.0, metavar="N/s", help="uploads per second")
    create.add_argument("--priority", choices=("high", "normal", "bulk"), default="normal",
                        help="the queue lane of its jobs: high for interactive uploads, bulk for imports")
    actions.add_parser("list", parents=[admin], help="every client (never a key)")
    revoke = actions.add_parser("revoke", parents=[admin], help="every key of a client stops working now")
    revoke.add_argument("name")
    rotate = actions.add_parser("rotate", parents=[admin], help="a new key; the old one works a grace period more")
    rotate.add_argument("name")
    rotate.add_argument("--grace", type=float, metavar="SECONDS",
                        help="how long the old key keeps working (default: the server's auth.rotate_grace_seconds)")


def _checked_url(parser: argparse.ArgumentParser, url: str) -> None:
    parts = urlsplit(url)
    if "://" not in url:
        parser.error(f"the URL needs http:// (or https://): try --url http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"{url!r} is not an http:// or https:// URL with a host, e.g. {DEFAULT_URL}")


def _error(text: str) -> None:
    print(f"thumbnailify: {text}", file=sys.stderr)


def _upload(args: argparse.Namespace, client: Client, console: Console) -> int:
    sources, refused = collect(args.paths)
    if not sources and not refused:
        _error("nothing to upload; accepted: " + " ".join(BY_EXTENSION))
        return 1
    sizes = client.health().get("sizes")
    if args.size and isinstance(sizes, dict) and args.size not in sizes:
        _error(f"this server makes no size {args.size!r}; it makes " + ", ".join(sizes) + " (nothing was sent)")
        return USAGE_ERROR
    writer = ThumbnailWriter(args.out) if args.out else None
    fancy = console.is_terminal
    for result in refused:  # told at once, in the same words as every other file's
        (LiveReport.line if fancy else PlainReport.line)(console, result)
    with LiveReport(console, len(sources)) if fancy else PlainReport(console) as report:
        batch = Batch(client, report, writer, args.size, args.timeout, args.skip_existing, args.chunk_size,
                      resumable.UnfinishedUploads(resumable.default_log()))
        results = batch.run(sources, args.jobs)
    results = refused + results
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
    items: list[JsonObject] = []
    for item in client.items(args.state, page=min(args.limit, 1000), filename=args.name):
        if len(items) >= args.limit:
            break
        items.append(item)
    if not console.is_terminal:
        for item in items:
            print("\t".join((item["media_id"], item["state"], item["media_type"], item["created_at"],
                             item["message"], item.get("filename", ""))))
        return 0
    console.print(listing_table(items, console.width))
    return 0


def _similar(args: argparse.Namespace, client: Client, console: Console) -> int:
    items: list[JsonObject] = []
    for item in client.similar(args.media_id, args.distance, page=min(args.limit, 1000)):
        if len(items) >= args.limit:
            break
        items.append(item)
    if not console.is_terminal:
        for item in items:
            print("\t".join((item["media_id"], str(item["distance"]), item["media_type"], item["created_at"],
                             item.get("filename", ""))))
        return 0
    console.print(listing_table(items, console.width, distances=True))
    return 0


def _delete(args: argparse.Namespace, client: Client, console: Console) -> int:
    failed = 0
    for media_id in args.media_ids:
        try:
            client.delete(media_id)
        except ApiError as exc:
            failed += 1
            _error(f"{media_id}: {exc}")
        else:
            print(f"deleted {media_id}")
    return 1 if failed else 0


def _usage(_args: argparse.Namespace, client: Client, _console: Console) -> int:
    print(json.dumps(client.usage(), indent=2))
    return 0


def _keys(args: argparse.Namespace, _client: Client, console: Console) -> int:
    if not args.admin_key:
        _error("the keys commands need the admin key: --admin-key or THUMBNAILIFY_ADMIN_KEY")
        return USAGE_ERROR
    admin = Client(args.url, args.admin_key)
    if args.action == "create":
        made = admin.admin(calls.create_key(args.name, quota_bytes=args.quota_bytes, quota_items=args.quota_items,
                                            rate=args.rate, priority=args.priority))
        print(made["key"])
        print(f"client {args.name!r} created; the key above is shown only this once", file=sys.stderr)
    elif args.action == "list":
        for item in admin.admin(calls.list_keys())["items"]:
            print(json.dumps(item) if not console.is_terminal else
                  "\t".join(f"{k}={v}" for k, v in item.items() if v is not None))
    elif args.action == "revoke":
        admin.admin(calls.revoke_key(args.name))
        print(f"client {args.name!r} revoked: its keys no longer work")
    else:
        rotated = admin.admin(calls.rotate_key(args.name, args.grace))
        print(rotated["key"])
        print(f"the old key keeps working for {rotated['grace_seconds']} s; the key above is shown only this once",
              file=sys.stderr)
    return 0


COMMANDS = {"upload": _upload, "status": _status, "list": _list, "similar": _similar, "delete": _delete,
            "usage": _usage, "keys": _keys}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _checked_url(parser, args.url)
    client = Client(args.url, args.api_key)
    # Through a pipe no width is known: rows are not wrapped, so each stays one line for grep.
    console = Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
    try:
        if args.command not in ("upload", "keys"):  # upload asks /health for its sizes anyway
            client.health()  # a server that is not there is said so in seconds, not after retries
        return COMMANDS[args.command](args, client, console)
    except ApiError as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        sys.stdout.flush()
        # Upload threads may be waiting on the server for minutes; an interrupted run ends now
        # (the server drops a single-request upload cut off half-way; a file sent by tus keeps what
        # arrived, and the next run continues it).
        os._exit(130)
