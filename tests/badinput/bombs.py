"""Hostile archives built without ever holding what they describe (a header claiming megabytes
is produced by compressing a repeated chunk), shared by the corpus and the reader tests."""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable

MANIFEST = b"slug: hostile\nname: Hostile\nversion: 1.0.0\n"


def tar_header(name: str, size: int, kind: bytes, *, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o644
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def tar_member(name: str, data: bytes) -> bytes:
    return tar_header(name, len(data), tarfile.REGTYPE) + data + b"\0" * ((-len(data)) % tarfile.BLOCKSIZE)


def template_tail() -> bytes:
    """A valid template (its manifest) and the end-of-archive blocks."""
    return tar_member("template.yaml", MANIFEST) + b"\0" * (2 * tarfile.BLOCKSIZE)


def gzip(parts: Iterable[bytes]) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def extended_header_bomb(kind: bytes, size: int) -> bytes:
    """A gzip'd tar: one GNU long name/link (L, K) or pax (x, g) header of `size` bytes, then a
    valid template. 200 MB compress to ~200 KB; 2 MB to ~2 KB."""
    chunk = b"a" * (1 << 20)

    def parts() -> Iterable[bytes]:
        pax = kind in (tarfile.XHDTYPE, tarfile.XGLTYPE)
        yield tar_header("././@PaxHeader" if pax else "././@LongLink", size, kind)
        remaining = size
        if pax:  # one "<len> comment=aaa...\n" record filling the header
            head = f"{size} comment=".encode()
            yield head
            remaining = size - len(head) - 1
        while remaining > 0:
            yield chunk[: min(remaining, len(chunk))]
            remaining -= len(chunk)
        if pax:
            yield b"\n"
        yield b"\0" * ((-size) % tarfile.BLOCKSIZE)
        yield template_tail()

    return gzip(parts())


def pax_header_chain(count: int) -> bytes:
    """`count` small pax headers in a row before the template (tarfile recursed once per header)."""
    record = b"18 comment=abcdef\n"
    block = tar_header("././@PaxHeader", len(record), tarfile.XHDTYPE) + record.ljust(tarfile.BLOCKSIZE, b"\0")
    return gzip([block * count, template_tail()])
