"""RepositoryExporter: publishes a generated project through one provider module.

Each target (`github`, `gitlab`, `git`, `zip`, `tar.gz`) is a module in
`services/export_providers/` registered here with `@register_provider`; it declares how
to validate a request's target (at the API, before anything runs) and how to export.
The exporter gives every provider the same context — the recorded files, a scratch
workspace, the decrypted token, a way to persist progress at once (the remote id right
after creation) — and owns the rules they share: one retry policy with capped backoff
that honours `Retry-After` / `X-RateLimit-Reset`, redaction of every message, and the
private-network guard.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from django.conf import settings

from apps.projects.models import ExportProvider, GeneratedProject, ProviderConnection, RepositoryExport
from apps.projects.services.stored_files import SourceFile, generation_files, read_source, read_sources
from apps.storage.blobs import scratch_folder
from core.exceptions import ApplicationError, ValidationFailed
from core.jobs import job_log
from core.redaction import redact

logger = logging.getLogger("kiln.export")

T = TypeVar("T")


class ExportFailed(ApplicationError):
    status_code = 502
    default_code = "export_failed"


@dataclass
class CleanTarget:
    """A validated export request: what is stored on the export row."""

    target: dict[str, Any]
    branch: str = "main"
    remote_url: str = ""
    target_key: str = ""


@dataclass
class ExportResult:
    remote_url: str = ""
    web_url: str = ""
    commit_sha: str = ""
    pushed: bool = False
    remote_repo_id: str = ""
    remote_full_name: str = ""
    archive_path: str = ""
    archive_size: int | None = None
    archive_sha256: str = ""


@dataclass
class ExportContext:
    export: RepositoryExport
    generated: GeneratedProject
    workspace: Path
    connection: ProviderConnection | None
    token: str | None
    record: Callable[..., None]
    heartbeat: Callable[[], None]
    logs: list[str] = field(default_factory=list)
    # set by a provider that adopted a repository an earlier Kiln export created (not this export's)
    adopted_repository: bool = False

    def files(self) -> list[SourceFile]:
        """The generation's recorded files, sorted by path."""
        return generation_files(self.generated.pk)

    def read(self, source: SourceFile) -> bytes:
        """One recorded file from the blob store, verified (`blob_missing` / `blob_corrupt` otherwise)."""
        return read_source(source)

    def read_many(self, sources: Sequence[SourceFile]) -> Iterator[bytes]:
        """Many recorded files, verified, in order (fetched several at a time from a remote store)."""
        return read_sources(sources)

    def log(self, message: str) -> None:
        text = redact(message, (self.token,) if self.token else ())
        self.logs.append(text)
        logger.info("export %s: %s", self.export.pk, text)
        job_log(RepositoryExport, self.export.pk, f"INFO {text}")

    @property
    def archive_folder(self) -> str:
        """The one top-level folder of an archive: the generated project's name."""
        from apps.projects.selectors import generated_project_name

        return generated_project_name(self.generated)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()

    def commit_timestamp(self) -> int:
        """The generation's finish time: fixed per generation, so commits are reproducible."""
        finished = self.generated.finished_at or self.generated.created_at
        return int(finished.timestamp())

    def commit_message(self) -> str:
        template = self.generated.template
        version = self.generated.template_version
        title = f"Initial commit from Kiln template {template.slug} {version}\n"
        return f"{title}\n{provenance_trailers(slug=template.slug, version=version, generation=self.generated.pk)}"


def provenance_trailers(*, slug: str, version: str, generation: int, previous: str | None = None) -> str:
    """Git trailers on every commit Kiln makes, naming where its files come from
    (`git log --format=%(trailers)` or `git interpret-trailers --parse` read them)."""
    lines = [f"Kiln-Template: {slug}@{version}"]
    if previous:
        lines.append(f"Kiln-Template-Previous: {slug}@{previous}")
    lines.append(f"Kiln-Generation: {generation}")
    return "\n".join(lines) + "\n"


class ProviderModule(Protocol):
    id: str
    needs_connection: bool
    connection_provider: str | None

    def clean_target(self, data: dict[str, Any], *, connection: ProviderConnection | None) -> CleanTarget: ...

    def export(self, ctx: ExportContext) -> ExportResult: ...


PROVIDERS: dict[str, ProviderModule] = {}


def register_provider(module: type[Any]) -> type[Any]:
    instance = module()
    if instance.id in PROVIDERS:
        raise RuntimeError(f"export provider '{instance.id}' registered twice")
    if instance.id not in ExportProvider.values:
        raise RuntimeError(f"export provider '{instance.id}' is not an ExportProvider choice")
    PROVIDERS[instance.id] = instance
    return module


def get_provider(provider_id: str) -> ProviderModule:
    from apps.projects.services import export_providers  # noqa: F401 - fills the registry

    provider = PROVIDERS.get(provider_id)
    if provider is None:
        raise ValidationFailed(
            f"Unknown export provider '{provider_id}'. Use one of: {', '.join(sorted(PROVIDERS))}.",
            extra={"fields": {"provider": ["Unknown provider."]}},
        )
    return provider


# --- retry policy shared by providers --------------------------------------------------------


@dataclass
class Retry:
    """Raised by a classifier: retry after `wait` seconds (None: exponential backoff)."""

    wait: float | None = None
    error: ApplicationError | None = None


def backoff(attempt: int) -> float:
    return min(2 ** (attempt - 1), 10) * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


def with_retries(
    call: Callable[[], T],
    *,
    classify: Callable[[BaseException], Retry | ApplicationError],
    what: str,
    ctx: ExportContext | None = None,
) -> T:
    """Run `call`; on a retryable error wait (capped) and try again, else raise the mapped error.

    A wait longer than KILN_PROVIDER_MAX_WAIT (an hour-long rate-limit reset) is not slept
    in a worker: the export fails with `rate_limited` and the wait in `extra.retry_after`.
    """
    attempts = settings.KILN_PROVIDER_MAX_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApplicationError:
            raise
        except Exception as exc:
            decision = classify(exc)
            if isinstance(decision, ApplicationError):
                raise decision from None
            wait = decision.wait if decision.wait is not None else backoff(attempt)
            if attempt == attempts or wait > settings.KILN_PROVIDER_MAX_WAIT:
                if decision.error is not None:
                    raise decision.error from None
                raise ExportFailed(
                    f"{what} kept failing after {attempt} attempts.",
                    code="rate_limited" if decision.wait else "remote_unavailable",
                    extra={"retry_after": round(wait)} if decision.wait else {},
                ) from None
            if ctx is not None:
                ctx.log(f"{what}: temporary failure ({type(exc).__name__}); retrying in {wait:.1f}s")
                ctx.heartbeat()
            time.sleep(max(wait, 0))
    raise AssertionError("unreachable")


def _until_http_date(value: str) -> float | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def retry_after_seconds(headers: dict[str, str] | None) -> float | None:
    """Seconds a rate-limited answer asks to wait, from its headers, or None.

    `Retry-After` (seconds or an HTTP date, RFC 9110) first; else GitHub's `x-ratelimit-reset`
    (Unix time) when `x-ratelimit-remaining` is 0; else GitLab's `RateLimit-Reset` (Unix time; a
    small number can only be a delay in seconds) or `RateLimit-ResetTime` (an HTTP date).
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after:
        seconds = _number(retry_after)
        wait = max(seconds, 0.0) if seconds is not None else _until_http_date(retry_after)
        if wait is not None:
            return wait
    github_reset = _number(lowered.get("x-ratelimit-reset"))
    if lowered.get("x-ratelimit-remaining") == "0" and github_reset is not None:
        return max(github_reset - time.time(), 0.0)
    reset = _number(lowered.get("ratelimit-reset"))
    if reset is not None:
        return max(reset - time.time(), 0.0) if reset > 1e9 else max(reset, 0.0)
    reset_time = lowered.get("ratelimit-resettime")
    return _until_http_date(reset_time) if reset_time else None


# --- the exporter ------------------------------------------------------------------------------


class RepositoryExporter:
    """Runs one export through its provider module inside a scratch workspace."""

    def __init__(self, export: RepositoryExport, *, record: Callable[..., None], heartbeat: Callable[[], None]) -> None:
        self.export = export
        self.record = record
        self.heartbeat = heartbeat

    def run(self) -> tuple[ExportResult, list[str]]:
        from apps.projects.services.secrets import SecretUnreadable, decrypt_secret

        export = self.export
        generated = export.generated
        provider = get_provider(export.provider)
        connection = export.connection
        token = None
        if provider.needs_connection and connection is None:
            raise ExportFailed("The export's connection was deleted.", code="connection_missing", status_code=409)
        if connection is not None:
            try:
                token = decrypt_secret(connection.token_encrypted)
            except SecretUnreadable:
                raise ExportFailed(
                    "The connection's token cannot be decrypted (was KILN_FERNET_KEY changed?); add the token again.",
                    code="connection_unreadable",
                ) from None
        with scratch_folder(f"export-{int(export.pk)}") as workspace:
            ctx = ExportContext(
                export=export,
                generated=generated,
                workspace=workspace,
                connection=connection,
                token=token,
                record=self.record,
                heartbeat=self.heartbeat,
            )
            result = provider.export(ctx)
        return result, ctx.logs


# --- proposals: a pull request (GitHub) or merge request (GitLab) for a pushed branch -----------


@dataclass(frozen=True)
class ProposalRequest:
    """Open or update the one open pull/merge request from `head` into `base` of an exported repository."""

    connection: ProviderConnection | None
    token: str
    repository: str  # the recorded full name (owner/name, group/sub/name)
    repository_id: str  # the recorded id (GitLab project id)
    head: str
    base: str
    title: str
    body: str
    draft: bool
    log: Callable[[str], None]


@dataclass(frozen=True)
class Proposal:
    number: int
    url: str
    created: bool


@dataclass(frozen=True)
class ProposalRef:
    """An opened pull/merge request, to ask the provider what became of it."""

    connection: ProviderConnection | None
    token: str
    repository: str
    repository_id: str
    number: int


class ProposingProvider(Protocol):
    def propose(self, request: ProposalRequest) -> Proposal: ...

    def proposal_state(self, ref: ProposalRef) -> str:
        """`open`, `closed` or `merged`."""
        ...


@dataclass(frozen=True)
class ExistingRepository:
    """A repository that exists on the provider (Kiln did not necessarily create it)."""

    clone_url: str
    web_url: str
    full_name: str
    repo_id: str
    default_branch: str


class AdoptingProvider(Protocol):
    def lookup(
        self, target: dict[str, Any], *, connection: ProviderConnection | None, token: str | None
    ) -> ExistingRepository: ...


def get_adopter(provider_id: str) -> AdoptingProvider:
    """The provider module that finds an existing repository of a validated target (every git provider)."""
    provider = get_provider(provider_id)
    if not callable(getattr(provider, "lookup", None)):
        raise ValidationFailed(
            f"{provider_id} targets cannot be adopted; use github, gitlab or git.",
            extra={"fields": {"provider": ["Not a git provider."]}},
        )
    return provider  # type: ignore[return-value]


def get_proposer(provider_id: str) -> ProposingProvider | None:
    """The provider module if it opens pull/merge requests (GitHub, GitLab), else None (a git remote)."""
    provider = get_provider(provider_id)
    return provider if callable(getattr(provider, "propose", None)) else None  # type: ignore[return-value]


def git_username(provider_id: str) -> str:
    """The Basic-auth user name the provider's git server expects with a token."""
    return str(getattr(get_provider(provider_id), "git_username", "x-access-token"))
