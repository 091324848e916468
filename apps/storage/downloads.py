"""Download responses for blobs: streamed through Kiln, or a 302 to a short-lived presigned URL.

Views check permissions first and then call `blob_response`. With `KILN_DOWNLOAD_REDIRECT` on
and a backend that signs URLs (S3), the answer is a `302` to a URL valid for
`KILN_DOWNLOAD_URL_TTL` seconds that makes the store send the same `Content-Disposition` and
`Content-Type`; otherwise the bytes stream from the store, verified as they go (a damaged blob
ends the stream short of its `Content-Length`, never with other bytes).
"""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase

from apps.storage.blobs import blob_store

STREAM_BLOCK = 1 << 16


def blob_response(*, sha256: str, size: int, filename: str, content_type: str) -> HttpResponseBase:
    store = blob_store()
    if settings.KILN_DOWNLOAD_REDIRECT:
        url = store.download_url(
            sha256, filename=filename, content_type=content_type, ttl=settings.KILN_DOWNLOAD_URL_TTL
        )
        if url is not None:
            redirect = HttpResponseRedirect(url)
            redirect["Cache-Control"] = "private, no-store"
            return redirect
    reader = store.open(sha256, size=size)  # BlobMissing (410) before any header is sent
    response = FileResponse(reader, as_attachment=True, filename=filename, content_type=content_type)
    response.block_size = STREAM_BLOCK
    response["Content-Length"] = str(size)
    return response
