"""Server-sent event streams of one job: `text/event-stream` under WSGI and ASGI.

A stream sends the job's stored events after the client's `Last-Event-ID` (`id:` is the
event row's id), then waits for new ones: on the job's Redis channel where Kiln has Redis,
else by polling the rows every KILN_EVENTS_POLL_SECONDS. It ends when the job is finished
(after its final status) or after KILN_EVENTS_MAX_SECONDS, whichever comes first; the
`retry:` field tells EventSource clients to reconnect, and they resume with Last-Event-ID.
A client that resumes a finished job with nothing left to read gets `204 No Content`, which
tells EventSource to stop reconnecting.

Under WSGI (gunicorn's sync workers) the response is a plain generator: it holds its
worker for at most the time bound. Under ASGI it is an async generator (database reads in
a thread, Redis through redis.asyncio), so no worker thread waits with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import models
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from apps.events.models import EventKind, JobEvent
from apps.events.services import channel_for, events_redis_url, job_events_after, job_latest_status, job_type_of
from core.jobs import TERMINAL_STATUSES

logger = logging.getLogger("kiln.events")

RECONNECT_MILLISECONDS = 1000
KEEPALIVE_SECONDS = 15.0
BATCH = 500
CONTENT_TYPE = "text/event-stream; charset=utf-8"


def format_event(kind: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One SSE message; `data` is one line of JSON (JSON escapes every newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


def last_event_id(request: HttpRequest) -> int:
    """The client's Last-Event-ID header (or ?last_event_id=): a row id, 0 when absent or not one."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 18 else 0


class Cursor:
    """What the stream sends next, read from the rows (no waiting, no I/O but the database)."""

    def __init__(self, model: type[models.Model], pk: int, after: int) -> None:
        self.model = model
        self.pk = int(pk)
        self.job_type = job_type_of(model)
        self.after = after
        self.last_status: str | None = None

    @property
    def channel(self) -> str:
        return channel_for(self.job_type, self.pk)

    def poll(self) -> tuple[list[bytes], bool]:
        """The messages to send now, and whether the stream is complete after them.

        The job row is read BEFORE its events: when the row is finished, the event that
        finished it (same transaction) is among the events read next.
        """
        row = self.model._default_manager.filter(pk=self.pk).values("status", "error").first()
        chunks: list[bytes] = []
        while True:
            events: list[JobEvent] = job_events_after(
                job_type=self.job_type, job_id=self.pk, after=self.after, limit=BATCH
            )
            for event in events:
                chunks.append(format_event(event.kind, event.data, event.pk))
                self.after = event.pk
                if event.kind == EventKind.STATUS and isinstance(event.data, dict):
                    self.last_status = event.data.get("status")
            if len(events) < BATCH:
                break
        if row is None:  # deleted while watched
            return chunks, True
        if row["status"] in TERMINAL_STATUSES:
            known = self.last_status or job_latest_status(job_type=self.job_type, job_id=self.pk)
            if known != row["status"]:
                # a row finished by a writer that recorded no event (or before events existed)
                chunks.append(format_event(EventKind.STATUS, {"status": row["status"], "error": row["error"]}))
                self.last_status = row["status"]
            return chunks, True
        return chunks, False


def _wait_seconds() -> float:
    return KEEPALIVE_SECONDS if events_redis_url() else max(0.05, settings.KILN_EVENTS_POLL_SECONDS)


class _SyncWaiter:
    """Blocks until the job's channel says something, or the timeout passes."""

    def __init__(self, channel: str) -> None:
        self.pubsub: Any = None
        url = events_redis_url()
        if url:
            import redis

            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=KEEPALIVE_SECONDS + 5)
                self.pubsub = client.pubsub(ignore_subscribe_messages=True)
                self.pubsub.subscribe(channel)
            except Exception as exc:  # Redis down: poll the rows instead
                logger.warning("event stream: Redis unavailable (%s); polling", exc)
                self.close()

    @property
    def interval(self) -> float:
        return _wait_seconds() if self.pubsub is not None else max(0.05, settings.KILN_EVENTS_POLL_SECONDS)

    def wait(self, timeout: float) -> None:
        if self.pubsub is None:
            time.sleep(timeout)
            return
        try:
            message = self.pubsub.get_message(timeout=timeout)
            while message is not None:  # drain: one read of the rows serves them all
                message = self.pubsub.get_message(timeout=0)
        except Exception as exc:
            logger.warning("event stream: Redis failed (%s); polling", exc)
            self.close()

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:  # closing a broken connection
                logger.debug("event stream: closing the Redis subscription failed", exc_info=True)
            self.pubsub = None


class _AsyncWaiter:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.pubsub: Any = None
        self.client: Any = None

    async def start(self) -> None:
        url = events_redis_url()
        if not url:
            return
        import redis.asyncio

        try:
            self.client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1)
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            await self.pubsub.subscribe(self.channel)
        except Exception as exc:
            logger.warning("event stream: Redis unavailable (%s); polling", exc)
            await self.close()

    @property
    def interval(self) -> float:
        return _wait_seconds() if self.pubsub is not None else max(0.05, settings.KILN_EVENTS_POLL_SECONDS)

    async def wait(self, timeout: float) -> None:
        if self.pubsub is None:
            await asyncio.sleep(timeout)
            return
        try:
            message = await self.pubsub.get_message(timeout=timeout)
            while message is not None:
                message = await self.pubsub.get_message(timeout=0)
        except Exception as exc:
            logger.warning("event stream: Redis failed (%s); polling", exc)
            await self.close()

    async def close(self) -> None:
        pubsub, client, self.pubsub, self.client = self.pubsub, self.client, None, None
        try:
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()
        except Exception:
            logger.debug("event stream: closing the Redis subscription failed", exc_info=True)


def _sync_stream(cursor: Cursor, first: list[bytes], deadline: float) -> Iterator[bytes]:
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    yield from first
    waiter = _SyncWaiter(cursor.channel)
    last_write = time.monotonic()
    try:
        while True:
            chunks, done = cursor.poll()  # the first poll covers the time before the subscription
            if chunks:
                yield b"".join(chunks)
                last_write = time.monotonic()
            if done:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                last_write = time.monotonic()
            waiter.wait(min(remaining, waiter.interval))
    finally:
        waiter.close()


async def _async_stream(cursor: Cursor, first: list[bytes], deadline: float) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    for chunk in first:
        yield chunk
    waiter = _AsyncWaiter(cursor.channel)
    await waiter.start()
    poll = sync_to_async(cursor.poll)
    last_write = time.monotonic()
    try:
        while True:
            chunks, done = await poll()
            if chunks:
                yield b"".join(chunks)
                last_write = time.monotonic()
            if done:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                last_write = time.monotonic()
            await waiter.wait(min(remaining, waiter.interval))
    finally:
        await waiter.close()


async def _async_chunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def event_stream_response(request: HttpRequest, *, model: type[models.Model], pk: Any) -> HttpResponseBase:
    """The stream of job `pk` (already looked up and permission-checked by the caller)."""
    deadline = time.monotonic() + max(1.0, settings.KILN_EVENTS_MAX_SECONDS)
    after = last_event_id(request)
    cursor = Cursor(model, pk, after)
    first, done = cursor.poll()
    if done and not first and after:
        return HttpResponse(status=204)  # finished and fully read: EventSource stops reconnecting
    asgi = isinstance(request, ASGIRequest)
    body: Any
    if done:
        chunks = [f"retry: {RECONNECT_MILLISECONDS}\n\n".encode(), *first]
        body = _async_chunks(chunks) if asgi else iter(chunks)
    elif asgi:
        body = _async_stream(cursor, first, deadline)
    else:
        body = _sync_stream(cursor, first, deadline)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
