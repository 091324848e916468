"""Recording and reading job events; waking the streams that wait for them.

Events are rows (`JobEvent`), written in the transaction that changed the job, so an event
exists exactly when its change does. After commit the event's id is published on the job's
Redis channel: a stream waiting on that channel wakes at once and reads the new rows. The
publish is only a wake-up call; a stream that misses it (Redis down, the embedded default
without Redis) reads the same rows at its next poll.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import models, transaction

from apps.events.models import EventKind, JobEvent

logger = logging.getLogger("kiln.events")

# After a failed publish, skip publishing for this long (a dead Redis must not slow jobs down).
PUBLISH_BACKOFF_SECONDS = 5.0
_publisher: dict[str, Any] = {"url": None, "client": None, "down_until": 0.0}


def job_type_of(model: type[models.Model]) -> str:
    return model._meta.label_lower


def channel_for(job_type: str, job_id: int) -> str:
    return f"kiln:events:{job_type}:{int(job_id)}"


def events_redis_url() -> str:
    return settings.KILN_EVENTS_REDIS_URL or ""


def _redis_client() -> Any:
    import redis

    url = events_redis_url()
    if _publisher["url"] != url or _publisher["client"] is None:
        _publisher["client"] = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        _publisher["url"] = url
    return _publisher["client"]


def _publish(channel: str, event_id: int) -> None:
    if not events_redis_url() or time.monotonic() < _publisher["down_until"]:
        return
    try:
        _redis_client().publish(channel, str(event_id))
    except Exception as exc:  # any Redis failure: the streams poll the rows anyway
        _publisher["down_until"] = time.monotonic() + PUBLISH_BACKOFF_SECONDS
        logger.warning("could not publish job event %s on %s (%s); streams will poll", event_id, channel, exc)


def job_event_record(*, model: type[models.Model], pk: Any, kind: str, data: dict[str, Any]) -> JobEvent:
    """Store one event of job `pk` and wake its streams after commit."""
    job_type = job_type_of(model)
    event = JobEvent.objects.create(job_type=job_type, job_id=int(pk), kind=EventKind(kind), data=data)
    channel = channel_for(job_type, int(pk))
    transaction.on_commit(lambda: _publish(channel, event.pk), robust=True)
    return event


def job_events_after(*, job_type: str, job_id: int, after: int, limit: int = 500) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job_type=job_type, job_id=job_id, id__gt=after).order_by("id")[:limit])


def job_latest_status(*, job_type: str, job_id: int) -> str | None:
    data = (
        JobEvent.objects.filter(job_type=job_type, job_id=job_id, kind=EventKind.STATUS)
        .order_by("-id")
        .values_list("data", flat=True)
        .first()
    )
    return data.get("status") if isinstance(data, dict) else None


def job_log_lines(*, model: type[models.Model], pk: Any, limit: int = 5000) -> list[str]:
    """The job's log lines, oldest first (the last `limit`)."""
    rows = (
        JobEvent.objects.filter(job_type=job_type_of(model), job_id=int(pk), kind=EventKind.LOG)
        .order_by("-id")
        .values_list("data", flat=True)[:limit]
    )
    return [str(data.get("line", "")) for data in reversed(list(rows)) if isinstance(data, dict)]


def job_events_delete(*, model: type[models.Model], pk: Any) -> None:
    JobEvent.objects.filter(job_type=job_type_of(model), job_id=int(pk)).delete()
