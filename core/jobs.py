"""Background jobs whose state lives in PostgreSQL rows, not in broker messages.

Every long operation (a generation, an export, a workflow step) is a row deriving from
`Job`. The row is the record that the work exists; a Celery message only says "look at
row N". The functions here implement the delivery rules of RELIABILITY.md once:

* `claim` takes a lease (owner + expiry) with a row lock, counts deliveries, and says
  whether this delivery may run: a finished job is not run again, a live lease held by
  another worker is not stolen, and too many deliveries fail the job (poison guard).
* `Lease.heartbeat` renews the lease, records progress and reports cancellation.
* `Lease.finish` records the terminal state only while the lease is still ours.
* The lease keeper renews every lease this process holds from a thread of its own, so a
  job whose work does not come back to a heartbeat for a while (one long template file, a
  slow push) keeps its lease and is never given to a second worker while it still runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, models, transaction
from django.dispatch import Signal
from django.utils import timezone

from core.exceptions import LimitExceeded
from core.models import TimeStampedModel
from core.redaction import redact

# --- the retry policy every job task shares -------------------------------------------------------

# Celery options of a job task: redelivered if the worker dies (acks_late), retried with backoff
# when the database drops out mid-task (the job row's lease keeps a redelivery from running it twice)
JOB_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


def busy_retry_countdown(retry_in: float) -> float:
    """Seconds until a task whose job is leased elsewhere looks again (a little after the lease ends)."""
    return min(max(retry_in, 1.0) + 1, settings.KILN_MAX_RETRY_COUNTDOWN)


logger = logging.getLogger("kiln.jobs")

# Sent after a job's status changed through these helpers (they use conditional UPDATEs,
# which send no post_save): sender=model, pk, status. Audit and counters listen to it.
job_status_changed = Signal()


def _changed(model: type[Job], pk: Any, status: str) -> None:
    job_status_changed.send(sender=model, pk=pk, status=status)


# Sent INSIDE the transaction that changed a job (so the event and the change commit, or roll
# back, together): sender=model, pk, kind ("status" | "progress" | "log"), data (a JSON object).
# apps.events records them for the live event streams and the logs endpoints.
job_event = Signal()


def announce(model: type[Job], pk: Any, kind: str, data: dict[str, Any]) -> None:
    """Tell listeners what happened to job `pk`; call it where the change is written."""
    job_event.send(sender=model, pk=pk, kind=kind, data=data)


def announce_status(model: type[Job], pk: Any, status: str, error: dict[str, Any] | None = None) -> None:
    announce(model, pk, "status", {"status": str(status), "error": error})


def job_log(model: type[Job], pk: Any, line: str) -> None:
    """One line in the job's log (GET .../logs/ and `event: log`); control characters escaped."""
    text = "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in redact(line))
    announce(model, pk, "log", {"line": text[:2000]})


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # stopped before doing anything outside until a person approves its plan (apps.approvals);
    # no worker holds it, the reaper leaves it alone, and claim() will not run it
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# not finished: counted against the project's cap, protected from retention and deletion
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING, JobStatus.AWAITING_APPROVAL})


class Job(TimeStampedModel):
    """Status, progress, timings and the lease/delivery bookkeeping of a background job."""

    status = models.CharField(max_length=32, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True, help_text="{code, message} of the last failure")
    attempts = models.PositiveIntegerField(default=1, help_text="1 + the number of user retries")
    delivery_count = models.PositiveIntegerField(default=0, help_text="deliveries of the current attempt")
    lease_owner = models.CharField(max_length=200, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


J = TypeVar("J", bound=Job)


class ClaimOutcome(Enum):
    CLAIMED = "claimed"
    ALREADY_DONE = "already_done"
    BUSY = "busy"
    POISONED = "poisoned"
    MISSING = "missing"
    AWAITING_APPROVAL = "awaiting_approval"


def new_lease_owner(task_id: str | None = None) -> str:
    """The name of one execution: host, pid and task id.

    A retry of the same task in the same process may take its own lease back at once;
    a redelivery to another process must wait for the lease (or find its holder dead).
    """
    return f"{socket.gethostname()}:{os.getpid()}:{task_id or uuid.uuid4().hex}"


def _owner_is_dead(owner: str) -> bool:
    """True when the lease holder ran on this host and its process is gone (SIGKILL)."""
    try:
        host, pid_text, *_ = owner.split(":")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def error_payload(code: str, message: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"code": code, "message": redact(message)}
    if extra:
        payload["extra"] = extra
    return payload


@dataclass
class Claim:
    outcome: ClaimOutcome
    lease: Lease | None = None
    retry_in: float = 0.0


def claim(model: type[J], pk: Any, *, owner: str) -> Claim:
    """Try to take the lease of job `pk` for `owner`. See the module docstring."""
    lease_seconds = settings.KILN_JOB_LEASE_SECONDS
    with transaction.atomic():
        job = model._default_manager.select_for_update().filter(pk=pk).first()
        if job is None:
            return Claim(ClaimOutcome.MISSING)
        if job.status in TERMINAL_STATUSES:
            return Claim(ClaimOutcome.ALREADY_DONE)
        if job.status == JobStatus.AWAITING_APPROVAL:
            return Claim(ClaimOutcome.AWAITING_APPROVAL)  # a stray delivery: approval enqueues it again
        now = timezone.now()
        lease_live = job.lease_owner and job.lease_expires_at and job.lease_expires_at > now
        if job.status == JobStatus.RUNNING and lease_live and job.lease_owner != owner:
            if not _owner_is_dead(job.lease_owner):
                assert job.lease_expires_at is not None
                return Claim(ClaimOutcome.BUSY, retry_in=(job.lease_expires_at - now).total_seconds())
            logger.warning("job %s %s: lease holder %s is dead, taking over", model.__name__, pk, job.lease_owner)
        if job.cancel_requested:
            model._default_manager.filter(pk=pk).update(
                status=JobStatus.CANCELLED, finished_at=now, lease_owner="", lease_expires_at=None, updated_at=now
            )
            announce_status(model, pk, JobStatus.CANCELLED)
            transaction.on_commit(lambda: _changed(model, pk, JobStatus.CANCELLED))
            return Claim(ClaimOutcome.ALREADY_DONE)
        deliveries = job.delivery_count + 1
        if deliveries > settings.KILN_JOB_MAX_DELIVERIES:
            poisoned = error_payload(
                "worker_lost_repeatedly",
                f"The job was started {job.delivery_count} times and never finished; "
                "it is not tried again. Retry it once the cause is fixed.",
            )
            model._default_manager.filter(pk=pk).update(
                status=JobStatus.FAILED,
                finished_at=now,
                lease_owner="",
                lease_expires_at=None,
                updated_at=now,
                error=poisoned,
            )
            announce_status(model, pk, JobStatus.FAILED, poisoned)
            transaction.on_commit(lambda: _changed(model, pk, JobStatus.FAILED))
            return Claim(ClaimOutcome.POISONED)
        model._default_manager.filter(pk=pk).update(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            delivery_count=deliveries,
            started_at=job.started_at or now,
            updated_at=now,
        )
        if job.status != JobStatus.RUNNING:
            announce_status(model, pk, JobStatus.RUNNING)
    lease = Lease(model, pk, owner)
    if not connection.in_atomic_block:
        # Inside a transaction (a test's, or a caller's) the claim is not committed yet: no other
        # connection can see or renew it, and the caller's own heartbeats are what keep it.
        lease_keeper.keep(lease)
    return Claim(ClaimOutcome.CLAIMED, lease=lease)


class LeaseLost(Exception):
    """Another execution owns the job now (or it was finished); stop without writing."""


class Lease:
    """The right to run one job, held by one execution, renewed by heartbeats."""

    def __init__(self, model: type[Job], pk: Any, owner: str) -> None:
        self.model = model
        self.pk = pk
        self.owner = owner
        self._progress: tuple[int | None, int | None] | None = None
        self.claimed_at = time.monotonic()
        self.thread = threading.get_ident()  # the thread working on it (see forget_leases)

    def _mine(self) -> models.QuerySet[Any]:
        return self.model._default_manager.filter(pk=self.pk, lease_owner=self.owner, status=JobStatus.RUNNING)

    def heartbeat(self, *, done: int | None = None, total: int | None = None) -> bool:
        """Renew the lease and store progress. Returns True when cancellation was requested."""
        now = timezone.now()
        fields: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=settings.KILN_JOB_LEASE_SECONDS),
            "updated_at": now,
        }
        if done is not None:
            fields["progress_done"] = done
        if total is not None:
            fields["progress_total"] = total
        if not self._mine().update(**fields):
            raise LeaseLost(f"{self.model.__name__} {self.pk}: lease lost")
        self._announce_progress(done, total)
        return bool(self.model._default_manager.filter(pk=self.pk).values_list("cancel_requested", flat=True).first())

    def _announce_progress(self, done: int | None, total: int | None) -> None:
        if (done is None and total is None) or self._progress == (done, total):
            return
        self._progress = (done, total)
        data = {"done": done, "total": total}
        if done is None or total is None:  # one side given: the other as stored
            stored = self.model._default_manager.filter(pk=self.pk).values("progress_done", "progress_total").first()
            if stored:
                data = {"done": stored["progress_done"], "total": stored["progress_total"]}
        announce(self.model, self.pk, "progress", data)

    def renew(self) -> bool:
        """Push the expiry forward (the keeper's call: no progress, no events). False when lost."""
        now = timezone.now()
        return bool(self._mine().update(lease_expires_at=now + timedelta(seconds=settings.KILN_JOB_LEASE_SECONDS)))

    def finish(self, status: JobStatus, *, error: dict[str, Any] | None = None, **fields: Any) -> bool:
        """Record a terminal state; False when the lease was no longer ours."""
        lease_keeper.drop(self)
        now = timezone.now()
        updated = self._mine().update(
            status=status,
            error=error,
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
            updated_at=now,
            **fields,
        )
        if not updated:
            logger.warning(
                "%s %s: finished by another execution; result of %s dropped", self.model.__name__, self.pk, self.owner
            )
        else:
            if "progress_done" in fields or "progress_total" in fields:
                self._announce_progress(fields.get("progress_done"), fields.get("progress_total"))
            announce_status(self.model, self.pk, status, error)
            transaction.on_commit(lambda: _changed(self.model, self.pk, status))
        return bool(updated)

    def stop_keeping(self) -> None:
        """The caller gives the lease up by an UPDATE of its own: stop renewing it."""
        lease_keeper.drop(self)

    def await_approval(self) -> bool:
        """Park the job as `awaiting_approval`, lease given up; approving it enqueues it again."""
        lease_keeper.drop(self)
        updated = self._mine().update(
            status=JobStatus.AWAITING_APPROVAL, lease_owner="", lease_expires_at=None, updated_at=timezone.now()
        )
        if updated:
            announce_status(self.model, self.pk, JobStatus.AWAITING_APPROVAL)
            transaction.on_commit(lambda: _changed(self.model, self.pk, JobStatus.AWAITING_APPROVAL))
        return bool(updated)

    def release(self) -> None:
        """Give the job back (status pending) so a retried delivery can claim it at once."""
        lease_keeper.drop(self)
        if self._mine().update(
            status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, updated_at=timezone.now()
        ):
            announce_status(self.model, self.pk, JobStatus.PENDING)


class LeaseKeeper:
    """Renews, from one thread, the lease of every job this process is working on.

    `claim` hands each lease here; `finish`/`release` take it back, and `forget_leases`
    (run after every Celery task) drops whatever a task claimed and left behind. Every
    KILN_JOB_LEASE_SECONDS / 4 the thread pushes each expiry a full lease ahead, so a live
    job's lease never expires however long one step of its work takes, while a process that
    dies (SIGKILL, OOM, a hard time limit) stops renewing and the reaper recovers the job. A
    lease is renewed at most for the task hard time limit: work running that long is stuck.
    The thread exists only while leases are held, and closes its database connection when it
    stops, so an idle process holds no extra connection.
    """

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # a new lease: look at the (maybe shorter) lease period again
        self._pid = os.getpid()

    def keep(self, lease: Lease) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread and leases are not ours
                self._leases, self._thread, self._pid = {}, None, os.getpid()
            self._leases[id(lease)] = lease
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kiln-lease-keeper", daemon=True)
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)

    def forget_thread(self, thread: int) -> None:
        with self._lock:
            for key in [key for key, lease in self._leases.items() if lease.thread == thread]:
                del self._leases[key]

    def clear(self) -> None:
        with self._lock:
            self._leases.clear()

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._leases.values())

    def _run(self) -> None:
        last = time.monotonic()
        try:
            while True:
                # every quarter lease; a new lease wakes the thread to look at the period again
                remaining = last + max(settings.KILN_JOB_LEASE_SECONDS / 4, 0.05) - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                    self._wake.clear()
                    continue
                last = time.monotonic()
                with self._lock:
                    leases = list(self._leases.values())
                    if not leases:
                        self._thread = None
                        return
                horizon = float(getattr(settings, "CELERY_TASK_TIME_LIMIT", 0) or 0)
                for lease in leases:
                    if horizon and time.monotonic() - lease.claimed_at > horizon:
                        logger.warning(
                            "%s %s: running past %.0fs; its lease is let go", lease.model.__name__, lease.pk, horizon
                        )
                        self.drop(lease)
                        continue
                    try:
                        if not lease.renew():  # finished, or taken over: nothing to keep
                            self.drop(lease)
                    except Exception:  # the database is away: try again next time
                        logger.warning(
                            "could not renew the lease of %s %s", lease.model.__name__, lease.pk, exc_info=True
                        )
                        connection.close()
        finally:
            connections.close_all()


lease_keeper = LeaseKeeper()


def forget_leases() -> None:
    """Stop renewing the leases claimed by this thread (its task is over, whatever it left)."""
    lease_keeper.forget_thread(threading.get_ident())


def check_capacity(active: models.QuerySet[Any], *, what: str) -> None:
    """Refuse new work (429 `too_many_active_jobs`) while `active` jobs fill the project's cap.

    Callers lock the project row first, so concurrent requests count each other's rows.
    """
    cap = settings.KILN_MAX_ACTIVE_JOBS_PER_PROJECT
    count = active.filter(status__in=ACTIVE_STATUSES).count()
    if count >= cap:
        raise LimitExceeded(
            f"The project has too many {what} pending or running ({count}, limit {cap}); wait for one to finish.",
            code="too_many_active_jobs",
            retry_after=10,
            extra={"limit": cap},
        )


def retry_fields(job: Job) -> dict[str, Any]:
    """The UPDATE that turns a failed or cancelled job into a fresh pending attempt."""
    now = timezone.now()
    return {
        "status": JobStatus.PENDING,
        "error": None,
        "attempts": job.attempts + 1,
        "delivery_count": 0,
        "cancel_requested": False,
        "lease_owner": "",
        "lease_expires_at": None,
        "progress_done": 0,
        "started_at": None,
        "finished_at": None,
        "enqueued_at": now,
        "updated_at": now,
    }


def enqueue_on_commit(task: Any, pk: Any, *, model: type[Job] | None = None) -> None:
    """Publish `task(pk)` after the surrounding transaction commits.

    A broker that is down at that moment must not lose the job: the row is already
    committed as `pending`, so the failure is logged and the reaper re-enqueues it.
    """

    def publish() -> None:
        try:
            task.apply_async(args=[pk])
        except Exception:  # broker down or misconfigured: the reaper recovers the row
            logger.exception("could not enqueue %s(%s); the reaper will re-enqueue it", task.name, pk)
            return
        if model is not None:
            model._default_manager.filter(pk=pk, status=JobStatus.PENDING).update(enqueued_at=timezone.now())

    transaction.on_commit(publish, robust=True)


# --- the reaper ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobKind:
    model: type[Job]
    task: Any


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(name: str, model: type[Job], task: Any) -> None:
    """Tell the reaper how to re-enqueue jobs of `model` (each app registers its own)."""
    JOB_KINDS[name] = JobKind(model=model, task=task)


@dataclass
class ReapReport:
    requeued_pending: int = 0
    requeued_running: int = 0
    failed_expired: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requeued_pending": self.requeued_pending,
            "requeued_running": self.requeued_running,
            "failed_expired": self.failed_expired,
        }


def reap_jobs(*, now: Any = None) -> ReapReport:
    """Recover jobs no worker is working on.

    * `pending` rows older than KILN_PENDING_DEADLINE_SECONDS (their message was lost:
      the broker was down at commit, or a worker died before claiming) are enqueued again;
    * `running` rows whose lease expired (or whose holder on this host is gone) are given
      back as `pending` and enqueued again while deliveries remain, else failed with
      `lease_expired`. A duplicate message is harmless: the lease lets one copy run.
    """
    now = now or timezone.now()
    report = ReapReport()
    pending_cutoff = now - timedelta(seconds=settings.KILN_PENDING_DEADLINE_SECONDS)
    for kind in JOB_KINDS.values():
        manager = kind.model._default_manager
        stale = manager.filter(status=JobStatus.PENDING, cancel_requested=False).filter(
            models.Q(enqueued_at__lt=pending_cutoff) | models.Q(enqueued_at__isnull=True, created_at__lt=pending_cutoff)
        )
        for pk in list(stale.values_list("pk", flat=True)[:500]):
            if _republish(kind, pk):
                manager.filter(pk=pk, status=JobStatus.PENDING).update(enqueued_at=now)
                report.requeued_pending += 1
        running = manager.filter(status=JobStatus.RUNNING).values_list(
            "pk", "lease_owner", "lease_expires_at", "delivery_count", "updated_at"
        )
        for pk, owner, expires, deliveries, updated_at in list(running[:500]):
            # no lease at all: between two workflow steps; lost only if nothing moved for a while
            expired = expires < now if expires is not None else updated_at < pending_cutoff
            if not expired and not (owner and _owner_is_dead(owner)):
                continue
            if deliveries >= settings.KILN_JOB_MAX_DELIVERIES:
                expired_error = error_payload(
                    "lease_expired",
                    f"The worker running this job stopped responding {deliveries} times; it is not tried again. "
                    "Retry it when the cause is fixed.",
                )
                with transaction.atomic():
                    updated = manager.filter(pk=pk, status=JobStatus.RUNNING, lease_owner=owner).update(
                        status=JobStatus.FAILED,
                        finished_at=now,
                        lease_owner="",
                        lease_expires_at=None,
                        updated_at=now,
                        error=expired_error,
                    )
                    if updated:
                        announce_status(kind.model, pk, JobStatus.FAILED, expired_error)
                report.failed_expired += updated
                if updated:
                    _changed(kind.model, pk, JobStatus.FAILED)
                continue
            with transaction.atomic():
                updated = manager.filter(pk=pk, status=JobStatus.RUNNING, lease_owner=owner).update(
                    status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, enqueued_at=now, updated_at=now
                )
                if updated:
                    job_log(kind.model, pk, "WARNING the worker stopped responding; the job is queued again")
                    announce_status(kind.model, pk, JobStatus.PENDING)
            if updated and _republish(kind, pk):
                report.requeued_running += 1
    return report


def _republish(kind: JobKind, pk: Any) -> bool:
    try:
        kind.task.apply_async(args=[pk])
    except Exception:
        logger.exception("reaper could not enqueue %s(%s)", kind.task.name, pk)
        return False
    return True
