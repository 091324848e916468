"""`manage.py storage_migrate --to s3`: copy every blob of the configured store into another backend, verified."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.storage.migrate import build_store, storage_migrate


class Command(BaseCommand):
    help = (
        "Copy the blob store (generated files, archives, template versions) from the configured backend "
        "(KILN_STORAGE_BACKEND) into another one, verifying every blob. Configure the target with its own "
        "settings first (AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, ... for s3)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        backends = sorted(settings.KILN_STORAGE_BACKENDS)
        parser.add_argument("--to", required=True, choices=backends, help="target backend")
        parser.add_argument(
            "--from",
            dest="source",
            default=None,
            choices=backends,
            help="source backend (default: KILN_STORAGE_BACKEND)",
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        source_name = options["source"] or settings.KILN_STORAGE_BACKEND
        target_name = options["to"]
        if source_name == target_name:
            raise CommandError(f"the source and the target are both '{target_name}'")
        source, target = build_store(source_name), build_store(target_name)
        try:
            target.check()
        except Exception as exc:
            raise CommandError(f"the target storage '{target_name}' is not usable: {type(exc).__name__}") from None

        def progress(done: int) -> None:
            if done % 1000 == 0:
                self.stderr.write(f"  {done} blobs done")

        report = storage_migrate(
            source=source, target=target, source_name=source_name, target_name=target_name, progress=progress
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(
                f"{report.blobs} blobs in {source_name}: {report.copied} copied ({report.bytes_copied} bytes), "
                f"{report.already_there} already in {target_name}; {report.verified} verified in {target_name}, "
                f"{len(report.failed)} failed"
            )
            if report.indexed_but_missing_in_source:
                self.stdout.write(
                    f"note: {report.indexed_but_missing_in_source} indexed blobs are missing from {source_name}"
                )
            for line in report.failed[:20]:
                self.stdout.write(f"  failed {line}")
        if not report.ok:
            raise CommandError(f"{len(report.failed)} blobs could not be copied and verified; run it again")
