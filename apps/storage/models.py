"""The index of the blob store: which blobs are stored, verified, and how big they are.

A row is written only after its bytes were written and verified (size and hash), so a
writer that finds a row skips the upload without asking the storage (a HEAD per file on
S3). The sweeper deletes the row together with the object (see `apps.storage.sweep`).
"""

from __future__ import annotations

from django.db import models


class Blob(models.Model):
    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.PositiveBigIntegerField()  # of the content
    # what the storage holds: the content as it is ("") or zlib-framed ("zlib", see apps.storage.blobs.encode_blob);
    # null for rows written before blobs were compressed (stored as they are)
    stored_size = models.PositiveBigIntegerField(null=True)
    encoding = models.CharField(max_length=8, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(sha256__regex=r"^[0-9a-f]{64}$"), name="blob_sha256_hex"),
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size} bytes)"
