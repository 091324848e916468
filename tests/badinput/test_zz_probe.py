import io, json, tarfile, zipfile, struct, zlib
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db

MANI = b"slug: up1\nname: Up\nversion: 1.0.0\n"

def show(label, r):
    print(label, r.status_code, r.content[:300])

def zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()

def upload(a, data, name="t.zip"):
    return a.post("/api/v1/templates/", {"archive": SimpleUploadedFile(name, data)}, format="multipart")

def test_probe(api, cast, make_template, run_jobs, settings):
    a = api(cast.alice)
    # CRC corrupted
    good = zip_bytes([("template.yaml", MANI), ("a.txt", b"hello world" * 10)])
    z = bytearray(good)
    zi = zipfile.ZipFile(io.BytesIO(good))
    info = zi.getinfo("a.txt")
    # patch CRC in local header (offset+14) and central dir
    off = info.header_offset
    z[off+14:off+18] = b"\0\0\0\0"
    show("crc", upload(a, bytes(z)))
    # declared size smaller (local + central)
    z = bytearray(good)
    cd = good.rfind(b"PK\x01\x02")
    # find central entry for a.txt
    idx = good.find(b"PK\x01\x02" )
    while idx != -1:
        fnlen = struct.unpack("<H", good[idx+28:idx+30])[0]
        name = good[idx+46:idx+46+fnlen]
        if name == b"a.txt":
            z[idx+24:idx+28] = struct.pack("<I", 5)
        idx = good.find(b"PK\x01\x02", idx+4)
    show("size-lie", upload(a, bytes(z)))
    # truncated tar
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for n, d in [("template.yaml", MANI), ("a.txt", b"x" * 5000)]:
            ti = tarfile.TarInfo(n); ti.size = len(d); t.addfile(ti, io.BytesIO(d))
    raw = gzip_raw = buf.getvalue()
    import gzip
    plain = gzip.decompress(raw)
    show("tar-trunc", upload(a, plain[:2048+512+1000], "t.tar"))
    show("tar-trunc-gz", upload(a, raw[: len(raw) // 2], "t.tar.gz"))
    show("empty", upload(a, b"", "t.zip"))
    show("junk", upload(a, b"PK\x03\x04garbage" * 10, "t.zip"))
    # yaml alias bomb
    bomb = b"slug: bomb\nname: B\nversion: 1.0.0\nparameters:\n  type: object\n  properties:\n    a: &a0 {type: string}\n"
    lines = ["x0: &x0 {type: object, properties: {p: {type: string}}}"]
    yb = "slug: bomb\nname: B\nversion: 1.0.0\nparameters:\n  type: object\n  $defs:\n"
    yb += "    l0: &l0 {type: string}\n"
    for i in range(1, 8):
        yb += f"    l{i}: &l{i} {{allOf: [*l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}, *l{i-1}]}}\n"
    import time
    t = time.time()
    show("yaml-bomb", upload(a, zip_bytes([("template.yaml", yb.encode())])))
    print("bomb took", time.time() - t)
