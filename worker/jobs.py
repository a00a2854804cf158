"""One media job from delivery to ack: the worker's state machine, for photos and videos alike.

Every step is idempotent, so a delivery may be repeated after a crash at any point:
  record gone or terminal -> ack and skip (a duplicate, or deleted meanwhile); a terminal record's
                             upload is removed unless it is an Error 503 waiting for a replay
  too many attempts        -> Error 422 (the image crashed or timed out the worker each time)
  same bytes made before   -> that item's thumbnails copied, nothing decoded
  Processing (by worker)   -> thumbnails written under temp names and renamed into place
  Completed / Error        -> written only while the record is still Processing, then raw removed
  a callback asked for     -> a job for the webhook workers, once the outcome is written
A record deleted while we worked makes the final transition fail; we then remove our thumbnail,
so nothing comes back after a DELETE. Outages of the store or the volume are retried with backoff;
when the retries run out the job is dead-lettered and, if the store answers, marked Error 503 with
its upload kept for `python -m thumbnailify.worker.replay`. Attempts are counted once per delivery (by its
token), so a store call repeated after a lost reply does not count again.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from thumbnailify import media, state
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.media import is_media_id
from thumbnailify.record import Callback, Fields, MediaRecord, Placeholder, State
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import Delivery, Files, SourceMissing, Store
from thumbnailify.worker.fingerprints import fingerprints
from thumbnailify.worker.handlers import Handler, ImageRejected, Thumbnails
from thumbnailify.worker.liveness import Heartbeat
from thumbnailify.worker.metrics import WorkerMetrics
from thumbnailify.worker.outcome import Outcome, Verdict

log = logging.getLogger(__name__)


# Where in ImageMagick's sources a message came from (" @ warning/jpeg.c/JPEGWarningHandler/389").
_SOURCE_LOCATION = re.compile(r" @ (?:warning|error|fatal)/[\w./-]+/\d+")


def scrubbed(message: str, source: Path) -> str:
    """A decoder's message as the client may read it: no paths, no library internals."""
    return _SOURCE_LOCATION.sub("", message.replace(f"`{source}'", "the upload").replace(str(source), "the upload"))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Bound work on the volume and in ImageMagick, which nothing else can interrupt.

    ImageMagick's own time limit is fatal and counts from process start; this bounds one try of a
    job instead. SIGALRM's default action ends the process even inside C code (a decode, a call on
    a hung NFS mount); the job is redelivered and counted as an attempt, and max_attempts ends it
    as an Error.

    Only a worker's main thread arms it: SIGALRM's timer is process-wide and its handler runs in
    the main thread, so a job run on another thread (the in-process API tests' worker) would cancel
    or fire someone else's alarm; such a job runs without a hard limit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass
class JobRunner:
    settings: Settings
    store: Store
    files: Files
    handler: Handler
    metrics: WorkerMetrics
    heartbeat: Heartbeat
    notify: Callable[[str, str], None]  # (media_id, media_type): a job for the webhook workers

    def run(self, delivery: Delivery) -> Verdict:
        """Decide and record the job's outcome; returns it with a reason. Never raises for a job."""
        conf = self.settings.worker
        retrying = Retrying(
            stop=stop_after_attempt(conf.max_retries),
            wait=wait_exponential(multiplier=conf.retry_base_delay, max=conf.retry_max_delay),
            # Faults of our own infrastructure are retried; anything else about a job is final.
            retry=retry_if_exception_type((*self.store.transient, *self.files.transient)),
            before=lambda _: self.heartbeat.beat(),  # each try is progress, however long the outage
            before_sleep=lambda rs: log.warning(
                "transient fault, retrying",
                extra={"media_id": delivery.media_id, "error": repr(rs.outcome and rs.outcome.exception())},
            ),
        )
        try:
            return Verdict(*retrying(self._attempt, delivery))
        except RetryError as exc:
            reason = f"gave up after {conf.max_retries} tries: {exc.last_attempt.exception()!r}"
            self.record_failure(delivery.media_id, state.GAVE_UP, reason)
            return Verdict(Outcome.DEAD_LETTERED, reason)

    def _attempt(self, delivery: Delivery) -> tuple[Outcome, str]:
        media_id = delivery.media_id
        if not is_media_id(media_id):
            return Outcome.SKIPPED, "message body is not a media id"
        record = self.store.get(media_id)
        if record is None:
            return Outcome.SKIPPED, "no record: deleted, or never accepted"
        # Armed before the volume is first touched: a hung mount must not hang the worker.
        with time_limit(self.settings.worker.job_timeout):
            return self._work(delivery, record)

    def _work(self, delivery: Delivery, record: MediaRecord) -> tuple[Outcome, str]:  # noqa: PLR0911
        media_id = delivery.media_id
        if state.is_terminal(record):
            # Also a retry of our own final write whose reply was lost: the upload goes either way,
            # and the webhook job, if one was due, is handed on (at least once).
            self._discard_upload(media_id, record)
            self._notify(media_id, record)
            return Outcome.SKIPPED, f"already {record.state}"
        media_type = media.BY_NAME.get(record.media_type)
        if media_type is None:
            unknown = record.media_type
            return self._finish_error(record, media_id, state.UNSUPPORTED, f"unsupported media type {unknown!r}")
        attempts = self.store.add_attempt(media_id, delivery.token)
        if attempts > self.settings.worker.max_attempts:
            return self._finish_error(
                record, media_id, state.UNDECODABLE,
                f"gave up after {attempts - 1} attempts: the image crashed or timed out the worker each time",
            )
        if not self.store.transition(media_id, State.PROCESSING, state.taken(state.now())):
            return Outcome.SKIPPED, "record changed meanwhile"
        self.metrics.observe_wait(record)
        done = self._reuse(media_id, record)
        if done is None:
            try:
                thumbnails = self._make(media_id, media_type)
            except ImageRejected as exc:
                return self._finish_error(record, media_id, exc.code, exc.message)
            except SourceMissing as exc:
                return self._finish_error(record, media_id, state.UNDECODABLE, str(exc))
            self.files.write_thumbnails(media_id, thumbnails.typed_files())
            prints = fingerprints(thumbnails.samples)
            done = state.completed(thumbnails.types(), thumbnails.dimensions(), state.now(),
                                   placeholder=Placeholder(prints.thumbhash, prints.blurhash), phash=prints.phash,
                                   metadata=thumbnails.metadata)
        if not self.store.transition(media_id, State.PROCESSING, done):
            # Deleted or finished meanwhile (by a twin delivery, or by our own write whose reply was
            # lost and that the client retried): leave nothing behind that the record does not need.
            record_now = self.store.get(media_id)
            if record_now is None:
                self.files.remove(media_id)
            else:
                self._discard_upload(media_id, record_now)
            return Outcome.SKIPPED, "record deleted or finished meanwhile"
        self._retire_upload(media_id)
        if record.sha256:
            self.store.remember_content(self._content_key(record, record.sha256), media_id)
        self._notify(media_id, record)
        return Outcome.COMPLETED, done["message"]

    def _content_key(self, record: MediaRecord, sha256: str) -> str:  # sha256: record's, checked by the caller
        """Identical uploads share thumbnails within one client only (the default client's keys
        are as they were before there were clients)."""
        key = f"{sha256}:{self.handler.settings_key}"
        return key if record.client == DEFAULT_CLIENT else f"{key}:{record.client}"

    def _reuse(self, media_id: str, record: MediaRecord) -> Fields | None:
        """The Completed fields of an identical upload made under the same settings, its thumbnails
        copied as this item's own (so deleting either never breaks the other); None if there is none."""
        if not record.sha256:
            return None
        twin_id = self.store.find_content(self._content_key(record, record.sha256))
        twin = self.store.get(twin_id) if twin_id and twin_id != media_id else None
        if twin_id is None or twin is None or twin.state != State.COMPLETED or twin.client != record.client:
            return None
        types = {name: media.BY_NAME.get(twin.thumbnail_types.get(name, "")) for name in twin.sizes}
        known = {name: kind for name, kind in types.items() if kind is not None}
        if len(known) != len(types) or not twin.named_sizes or twin.placeholder is None:
            return None  # made before sizes, or before the fingerprints: made anew, with them
        if not self.files.copy_thumbnails(twin_id, media_id, known):
            return None  # deleted meanwhile: make them anew
        done = state.completed({name: kind.name for name, kind in known.items()}, twin.sizes, state.now(),
                               placeholder=twin.placeholder, phash=twin.phash, metadata=twin.metadata)
        return done | {"message": f"{done['message']}, reused from identical upload {twin_id}"}

    def _notify(self, media_id: str, record: MediaRecord | None) -> None:
        """Hand the webhook on when the upload asked for one and it is not settled yet (no change
        of the media's state touches the callback's fields, so the record before it tells)."""
        if record is not None and record.callback is not None and record.callback.state == Callback.PENDING:
            self.notify(media_id, record.media_type)

    def _make(self, media_id: str, media_type: media.MediaType) -> Thumbnails:
        with self.files.source(media_id) as source:
            started = time.perf_counter()
            try:
                return self.handler.make(source, media_type)
            except ImageRejected as exc:
                raise ImageRejected(exc.code, scrubbed(exc.message, source)) from exc
            finally:
                self.metrics.processing.observe(time.perf_counter() - started)

    def _finish_error(self, record: MediaRecord, media_id: str, code: int, message: str) -> tuple[Outcome, str]:
        failed = state.failed(code, message, state.now())
        if self.store.transition(media_id, State.PROCESSING, failed):
            self._retire_upload(media_id)
            self._notify(media_id, record)
        else:  # changed meanwhile, perhaps by this very write whose reply was lost
            self._discard_upload(media_id, self.store.get(media_id))
        return Outcome.ERROR, f"{code} {message}"

    def _discard_upload(self, media_id: str, record: MediaRecord | None) -> None:
        if not state.keeps_upload(record):
            self._retire_upload(media_id)

    def _retire_upload(self, media_id: str) -> None:
        """An upload its item no longer needs: gone now, or kept retention.raw_hours for the sweep."""
        if self.settings.retention.raw_hours <= 0:
            self.files.remove_upload(media_id)

    def abandon(self, delivery: Delivery) -> None:
        """A job the queue gave up on by itself (a quorum queue's delivery limit: the image crashed
        or timed out a worker on every delivery) ends as Error 422, like one our own count stops.
        Raises on an outage, so the queue keeps it until it can be recorded."""
        media_id = delivery.media_id
        if not is_media_id(media_id):
            return
        message = (f"gave up after more than {self.settings.worker.max_attempts} deliveries: "
                   "the image crashed or timed out the worker each time")
        failed = state.failed(state.UNDECODABLE, message, state.now())
        if self.store.transition(media_id, State.PROCESSING, failed):
            self.files.remove_upload(media_id)
            self._notify(media_id, self.store.get(media_id))
        log.warning("job given up by the queue: Error 422", extra={"media_id": media_id})

    def record_failure(self, media_id: str, code: int, reason: str) -> None:
        """Best effort, never raises: mark a job Error when its own run could not.

        If the store is still down, the record stays Processing with its upload kept, and the
        server's start-up recovery pass re-queues it. An Error 503 keeps its upload for a replay.
        """
        try:
            if is_media_id(media_id) and self.store.transition(
                media_id, State.PROCESSING, state.failed(code, reason, state.now())
            ):
                self._notify(media_id, self.store.get(media_id))
                if code != state.GAVE_UP:
                    with time_limit(self.settings.worker.job_timeout):
                        self._retire_upload(media_id)
        except Exception as exc:
            log.warning("could not mark Error either", extra={"media_id": media_id, "error": repr(exc)})
