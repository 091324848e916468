"""Kiln's OpenAPI schema, loaded in-process from the WSGI app, and the fuzzing configuration.

`KILN_FUZZ_EXAMPLES` bounds the examples Hypothesis draws per operation in the fuzzing phase
(default 10: the whole `tests/fuzz` run takes about a minute on 2 cores). `KILN_FUZZ_SEED`
fixes the seed (default 20261121) so a run is reproducible; change it to explore.

Phases: `examples` (none declared), `coverage` (deterministic boundary and missing/extra
value cases, plus undeclared HTTP methods: the source of `missing_required_header` and
`unsupported_method`) and `fuzzing` (random cases), all with positive *and* negative data.
The `stateful` phase is off: it needs links between operations, which the schema has none of.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

SCHEMA_PATH = "/api/schema/?format=json"
EXAMPLES = int(os.environ.get("KILN_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("KILN_FUZZ_SEED", "20261121"))

CONFIG: dict[str, Any] = {
    "seed": SEED,
    # allow-x00 off: Kiln refuses NUL characters anywhere in a request (400 parse_error; PostgreSQL text
    # cannot hold them), a deliberate rule the schema cannot express. The bad-input corpus covers NUL.
    # database "none": no example database, so a run depends on the seed alone (no replays of old failures)
    "generation": {"mode": "all", "max-examples": EXAMPLES, "allow-x00": False, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
}


def load() -> Any:
    from core.wsgi import application

    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=schemathesis.Config.from_dict(CONFIG))


SCHEMA = load()
RAW: dict[str, Any] = SCHEMA.raw_schema
METHODS = ("get", "post", "put", "patch", "delete")
OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    (method.upper(), path, op)
    for path, item in RAW["paths"].items()
    for method, op in item.items()
    if method in METHODS
]
