"""`python -m thumbnailify.worker.replay`: after an outage, put the dead letters back on the work queue.

A job that met an outage of the store or the volume on every retry is a dead letter (RabbitMQ's
`<queue>.dead`, or a dead row of the embedded queue) and its record says Error 503 with the upload
kept. For each dead letter present when it starts, this resets the record to Processing with its
attempts at zero and re-queues the job, so a worker makes it like a new one. A letter whose record
is gone (deleted) or finished meanwhile is dropped. Run it with the service's config (the same
THUMBNAILIFY_* settings); workers may be running. A store or queue outage stops it with exit code 1,
the letter it was on kept.
"""

from __future__ import annotations

import argparse
import logging
import sys

from thumbnailify import state
from thumbnailify.backends.loader import load_backend
from thumbnailify.kinds import MEDIA_KINDS
from thumbnailify.logs import setup_logging
from thumbnailify.settings import Settings, load_settings
from thumbnailify.startup import cannot_start_exits
from thumbnailify.worker.backends import TABLE, DeadLetter, DeadLetters, Store

log = logging.getLogger("replay")


def replay_one(store: Store, dead: DeadLetters, letter: DeadLetter) -> bool:
    """Re-queue one dead letter with its record reset; False when it is no longer needed."""
    record = store.get(letter.media_id)
    if record is None or not state.keeps_upload(record):
        dead.drop(letter)
        return False
    if not store.transition(letter.media_id, record.state, state.replayed(state.now())):
        dead.drop(letter)  # changed meanwhile: deleted, finished, or replayed by someone else
        return False
    dead.requeue(letter)
    return True


def replay(settings: Settings, limit: int | None, kind: str = "image") -> tuple[int, int]:
    """Returns (re-queued, dropped)."""
    names = settings.backends
    store: Store = load_backend(TABLE, "store", names.store)(settings)
    dead: DeadLetters = load_backend(TABLE, "dead_letters", names.queue)(settings, kind)
    requeued = dropped = 0
    try:
        while limit is None or requeued + dropped < limit:
            letter = dead.take()
            if letter is None:
                break
            if replay_one(store, dead, letter):
                requeued += 1
                log.info("re-queued", extra={"media_id": letter.media_id, "dead_because": letter.reason})
            else:
                dropped += 1
                log.info("dropped: record gone or finished", extra={"media_id": letter.media_id})
    finally:
        dead.close()
        store.close()
    return requeued, dropped


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m thumbnailify.worker.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="replay at most this many dead letters")
    parser.add_argument("--kind", choices=MEDIA_KINDS, default="image", help="whose dead letters (default: image)")
    args = parser.parse_args()
    settings = load_settings()
    setup_logging(settings.log, "replay")
    try:
        requeued, dropped = replay(settings, args.limit, args.kind)
    except Exception:  # an outage, most likely: the letters not yet handled stay where they are
        log.exception("replay stopped")
        return 1
    log.info("replay done: %d re-queued, %d dropped", requeued, dropped)
    return 0


if __name__ == "__main__":
    with cannot_start_exits("python -m thumbnailify.worker.replay"):
        sys.exit(main())
