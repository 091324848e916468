"""What a template version declares about updates, as a merge policy for each format.

Copier: `_skip_if_exists` paths are only ever created, the new version's `_exclude` paths are
not the template's (Copier excludes them from its render of the old version too, so a path a
version stops shipping is left alone), and the answers file always takes the new render.
Native templates: `exclude` globs and `update.skip_if_exists` in template.yaml.
"""

from __future__ import annotations

from typing import Any

from apps.updates.services.merge import MergePolicy


def copier_policy(spec: Any) -> MergePolicy:
    return MergePolicy(
        skip_if_exists=tuple(spec.skip_if_exists),
        exclude=tuple(spec.exclude),
        template_owned=(spec.answers_file,),
    )


def native_policy(*, exclude: tuple[str, ...] = (), skip_if_exists: tuple[str, ...] = ()) -> MergePolicy:
    return MergePolicy(skip_if_exists=skip_if_exists, exclude=exclude)
