"""The kinds of jobs an approval can gate; importing this package registers each of them.

A kind is one module with a class decorated by `@register_kind` that has `id` and:
`plan(approval) -> dict` (what the job will do, exactly, computed from the rows now),
`resume(approval)` (the approved job goes back to `pending` and is enqueued) and
`end(approval, error=...)` (the rejected job ends `cancelled`). The last two call the job's own
services, which own its status.
"""

from __future__ import annotations

from typing import Any, Protocol


class ApprovalKind(Protocol):
    id: str

    def plan(self, approval: Any) -> dict[str, Any]: ...

    def resume(self, approval: Any) -> None: ...

    def end(self, approval: Any, *, error: dict[str, Any]) -> None: ...


KINDS: dict[str, ApprovalKind] = {}


def register_kind(cls: type[Any]) -> type[Any]:
    instance = cls()
    if instance.id in KINDS:
        raise RuntimeError(f"approval kind '{instance.id}' registered twice")
    KINDS[instance.id] = instance
    return cls


def get_kind(kind_id: str) -> ApprovalKind:
    from apps.approvals.kinds import export, run_step  # noqa: F401 - fills the registry

    return KINDS[kind_id]
