"""Content for a blueprint's own Python modules (not the framework's wiring): services and repositories,
base classes and their handlers, jobs, workers, command lines, senders, clients, parsers, exceptions, helpers.

A module gets the first *kind* in `KINDS` whose test matches it; the kind's writer returns the module's
code and the tests that exercise it (`Unit`). The tests go into the generated test module that covers
the module (engine.w_test_late, django_stack.test_module); they call the code, not only import it.

Names come from the document: a class it names in the module's description (`EmailChannel sends through
SMTP`), else one derived from the file and folder (`node_handlers/llm_call.py` beside an abstract
`NodeHandler` → `LlmCallHandler(NodeHandler)`). A class's main method follows its name's last word
(`...Parser.parse`, `...Channel.send`, `...Executor.execute`, `...Client.call`; `VERBS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apps.blueprints.services.scaffold.names import camel, class_names, module_path, singular, snake

if TYPE_CHECKING:
    from apps.blueprints.services.scaffold.engine import Model, Scaffolder


@dataclass
class Unit:
    code: str  # the module after its docstring
    tests: str = ""  # test functions; they import what they test with importlib.import_module


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def stem(path: str) -> str:
    return _base(_dir(path)) if path.endswith("/__init__.py") else _base(path).removesuffix(".py")


def _text(s: Scaffolder, path: str) -> str:
    return s.describe(path)


_LABEL = re.compile(r"^(?:purpose|description|summary|role)\s*:\s*", re.IGNORECASE)


def summary_line(s: Scaffolder, path: str, fallback: str) -> str:
    """The first line of the document's description that says what the module does (not a label such as
    `Contents:` or `Lines: ~200`), as a sentence."""
    for line in s.describe(path).splitlines():
        text = _LABEL.sub("", line.strip().lstrip("-*• ").strip())
        if len(text.split()) >= 2 and not text.endswith(":") and not re.match(r"^[\w ]{1,20}:\s*\S{0,12}$", text):
            return _sentence(text)
    return _sentence(fallback)


def _settings_import(s: Scaffolder) -> str:
    if s.framework == "django":
        return "from django.conf import settings\n"
    return f"from {s.mod(s.config_path)} import settings\n"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate)
    return candidate


def test_name(s: Scaffolder, text: str) -> str:
    return _unique("test_" + snake(text)[:60], s.test_names)


# --- models behind services ----------------------------------------------------------------------

_STORE_SUFFIX = re.compile(r"_(?:service|services|repository|repositories|repo|crud|manager|store|dao)$")
_STORE_WORDS = re.compile(r"\bcrud\b|\brepositor(?:y|ies)\b|\bpersist|\bstores?\b", re.IGNORECASE)


def model_for(s: Scaffolder, path: str) -> Model | None:
    """The model a service/repository module works on: by its name, or named beside CRUD words."""
    if s.orm not in {"sqlalchemy", "django"} or not s.models:
        return None
    key = singular(_STORE_SUFFIX.sub("", snake(stem(path))))
    for model in s.models:
        if snake(model.cls) == key:
            return model
    text = _text(s, path)
    if _STORE_WORDS.search(text):
        for model in s.models:
            if re.search(rf"\b{re.escape(model.cls)}\b", text):
                return model
    return None


def _store_class(path: str, model: Model) -> str:
    name = stem(path)
    return camel(name) if _STORE_SUFFIX.search(snake(name)) else f"{model.cls}Repository"


def _is_store(s: Scaffolder, path: str) -> bool:
    return s.roles.get(path) in {"service", "crud", "module"} and model_for(s, path) is not None


def w_store(s: Scaffolder, path: str) -> Unit:
    model = model_for(s, path)
    assert model is not None
    cls = _store_class(path, model)
    m = model.cls
    doc = f'    """Create, read, list and delete {m} rows'
    if s.orm == "django":
        code = (
            f"\nfrom {model.module} import {m}\n\n\n"
            f"class {cls}:\n{doc}."
            '"""\n\n'
            f"    def list_all(self, *, limit: int = 100) -> list[{m}]:\n"
            '        """The rows, oldest first."""\n'
            f'        return list({m}.objects.order_by("id")[:limit])\n\n'
            f"    def get(self, item_id: int) -> {m} | None:\n"
            f"        return {m}.objects.filter(pk=item_id).first()\n\n"
            f"    def create(self, *, name: str) -> {m}:\n"
            f"        return {m}.objects.create(name=name)\n\n"
            "    def delete(self, item_id: int) -> bool:\n"
            f"        deleted, _ = {m}.objects.filter(pk=item_id).delete()\n"
            "        return deleted > 0\n"
        )
        tests = (
            "\n\n@pytest.mark.django_db\n"
            f"def {test_name(s, cls + '_creates_reads_lists_and_deletes')}() -> None:\n"
            f'    service = importlib.import_module("{s.mod(path)}").{cls}()\n'
            '    row = service.create(name="first")\n'
            '    assert service.get(row.pk).name == "first"\n'
            "    assert [item.pk for item in service.list_all()] == [row.pk]\n"
            "    assert service.delete(row.pk) is True\n"
            "    assert service.get(row.pk) is None\n"
        )
        return Unit(code, tests)
    if s.orm_async:
        code = (
            "\nfrom sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n"
            f"from {model.module} import {m}\n\n\n"
            f"class {cls}:\n{doc} (the caller owns the session)."
            '"""\n\n'
            "    def __init__(self, session: AsyncSession) -> None:\n"
            "        self.session = session\n\n"
            f"    async def list_all(self, *, limit: int = 100) -> list[{m}]:\n"
            '        """The rows, oldest first."""\n'
            f"        return list(await self.session.scalars(select({m}).order_by({m}.id).limit(limit)))\n\n"
            f"    async def get(self, item_id: int) -> {m} | None:\n"
            f"        return await self.session.get({m}, item_id)\n\n"
            f"    async def create(self, *, name: str) -> {m}:\n"
            f"        row = {m}(name=name)\n"
            "        self.session.add(row)\n"
            "        await self.session.commit()\n"
            "        await self.session.refresh(row)\n"
            "        return row\n\n"
            "    async def delete(self, item_id: int) -> bool:\n"
            "        row = await self.get(item_id)\n"
            "        if row is None:\n"
            "            return False\n"
            "        await self.session.delete(row)\n"
            "        await self.session.commit()\n"
            "        return True\n"
        )
        tests = (
            f"\n\ndef {test_name(s, cls + '_creates_reads_lists_and_deletes')}() -> None:\n"
            f'    database = importlib.import_module("{s.mod(s.database_path)}")\n'
            f'    module = importlib.import_module("{s.mod(path)}")\n\n'
            "    async def scenario() -> None:\n"
            "        await database.init_db()\n"
            "        async with database.SessionLocal() as session:\n"
            f"            service = module.{cls}(session)\n"
            '            row = await service.create(name="first")\n'
            '            assert (await service.get(row.id)).name == "first"\n'
            "            assert row.id in [item.id for item in await service.list_all()]\n"
            "            assert await service.delete(row.id) is True\n"
            "            assert await service.get(row.id) is None\n"
            "        await database.engine.dispose()\n\n"
            "    asyncio.run(scenario())\n"
        )
        return Unit(code, tests)
    code = (
        "\nfrom sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\n"
        f"from {model.module} import {m}\n\n\n"
        f"class {cls}:\n{doc} (the caller owns the session)."
        '"""\n\n'
        "    def __init__(self, session: Session) -> None:\n"
        "        self.session = session\n\n"
        f"    def list_all(self, *, limit: int = 100) -> list[{m}]:\n"
        '        """The rows, oldest first."""\n'
        f"        return list(self.session.scalars(select({m}).order_by({m}.id).limit(limit)))\n\n"
        f"    def get(self, item_id: int) -> {m} | None:\n"
        f"        return self.session.get({m}, item_id)\n\n"
        f"    def create(self, *, name: str) -> {m}:\n"
        f"        row = {m}(name=name)\n"
        "        self.session.add(row)\n"
        "        self.session.commit()\n"
        "        self.session.refresh(row)\n"
        "        return row\n\n"
        "    def delete(self, item_id: int) -> bool:\n"
        "        row = self.get(item_id)\n"
        "        if row is None:\n"
        "            return False\n"
        "        self.session.delete(row)\n"
        "        self.session.commit()\n"
        "        return True\n"
    )
    tests = (
        f"\n\ndef {test_name(s, cls + '_creates_reads_lists_and_deletes')}(db_session) -> None:\n"
        f'    service = importlib.import_module("{s.mod(path)}").{cls}(db_session)\n'
        '    row = service.create(name="first")\n'
        '    assert service.get(row.id).name == "first"\n'
        "    assert row.id in [item.id for item in service.list_all()]\n"
        "    assert service.delete(row.id) is True\n"
        "    assert service.get(row.id) is None\n"
    )
    return Unit(code, tests)


# --- classes: names and their main method ----------------------------------------------------------

# last word of a class name → (method, what its body does)
VERBS: dict[str, tuple[str, str]] = {
    "Handler": ("handle", "record"),
    "Executor": ("execute", "record"),
    "Step": ("execute", "record"),
    "Runner": ("run", "record"),
    "Engine": ("run", "record"),
    "Pipeline": ("run", "record"),
    "Processor": ("process", "record"),
    "Worker": ("process", "record"),
    "Parser": ("parse", "parse"),
    "Channel": ("send", "send"),
    "Sink": ("send", "send"),
    "Notifier": ("send", "send"),
    "Sender": ("send", "send"),
    "Publisher": ("send", "send"),
    "Mailer": ("send", "send"),
    "Exporter": ("export", "record"),
    "Client": ("call", "call"),
    "Caller": ("call", "call"),
    "Gateway": ("call", "call"),
    "Generator": ("generate", "record"),
    "Builder": ("build", "record"),
    "Factory": ("create", "record"),
    "Validator": ("validate", "record"),
    "Checker": ("check", "record"),
    "Loader": ("load", "record"),
    "Reader": ("read", "record"),
    "Tailer": ("follow", "record"),
    "Watcher": ("watch", "record"),
    "Service": ("handle", "record"),
    "Manager": ("handle", "record"),
}
# "Qwen LLM integration", "Stripe API client", "calls the payments API" (not "step type registry integration")
_CALL_WORDS = re.compile(
    r"\b(?:api|llm|external|third[- ]party|http|rest|openai|webhook)s?\s+(?:integration|client|calls?|calling|wrapper)\b"
    r"|\bcalls? (?:the|an?) [\w ]{0,20}\bapi\b|\bintegration with\b",
    re.IGNORECASE,
)
_SMTP_WORDS = re.compile(r"\bsmtp\b|\be-?mail", re.IGNORECASE)
_HTTP_WORDS = re.compile(r"\bhttps?\b|\bwebhooks?\b|\burl\b|\bcollector\b|\bjson post|\bposts?\b", re.IGNORECASE)


def _last_word(name: str) -> str:
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*", name)
    return words[-1] if words else name


def verb_of(s: Scaffolder, path: str, cls: str) -> tuple[str, str]:
    method, body = VERBS.get(_last_word(cls), ("handle", "record"))
    if body == "record" and _CALL_WORDS.search(_text(s, path)) and _last_word(cls) in {"Service", "Manager"}:
        return "call", "call"
    return method, body


def _folder_suffix(path: str) -> str:
    folder = _base(_dir(path))
    for word in re.split(r"_+", folder)[::-1]:
        suffix = camel(singular(word))
        if suffix in VERBS:
            return suffix
    return ""


def derived_class(s: Scaffolder, path: str, *, suffix: str = "") -> str:
    name = camel(stem(path))
    if not suffix and _last_word(name) in VERBS:
        return name
    suffix = suffix or _folder_suffix(path) or ("Service" if s.roles.get(path) == "service" else "")
    if suffix and not name.endswith(suffix):
        name += suffix
    return name


def named_classes(s: Scaffolder, path: str) -> list[str]:
    """Classes the description names (not models, errors or the document's technologies)."""
    models = {model.cls for model in s.models}
    return [
        name
        for name in class_names(_text(s, path))
        if name not in models and not name.endswith(("Error", "Exception", "Config", "Settings"))
    ]


def _init_and_method(s: Scaffolder, path: str, cls: str, method: str, body: str) -> tuple[str, str, str]:
    """(imports, the class body, a test) for one class whose main method is `method`."""
    summary = summary_line(s, path, f"{cls} of {s.mod(path)}")
    mod = s.mod(path)
    instance = f'importlib.import_module("{mod}").{cls}'
    if body == "parse":
        as_json = "json" in (stem(path) + cls).lower()
        imports = "import json\n" if as_json else ""
        if as_json:
            logic = (
                "        value = json.loads(text)\n"
                '        return value if isinstance(value, dict) else {"value": value}\n'
            )
            sample, expected = '\'{"level": "info", "n": 1}\'', '{"level": "info", "n": 1}'
        else:
            logic = (
                "        record: dict[str, object] = {}\n"
                "        fields: list[str] = []\n"
                "        for token in text.split():\n"
                '            key, sep, value = token.partition("=")\n'
                "            if sep and key:\n"
                "                record[key] = value\n"
                "            else:\n"
                "                fields.append(token)\n"
                '        record["fields"] = fields\n'
                "        return record\n"
            )
            sample, expected = '"level=info 200 GET"', '{"level": "info", "fields": ["200", "GET"]}'
        code = (
            f"    def parse(self, text: str) -> dict[str, object] | None:\n"
            '        """One record from one line of text (None for a blank line)."""\n'
            "        text = text.strip()\n"
            "        if not text:\n"
            "            return None\n"
            f"{logic}"
        )
        test = (
            f"\n\ndef {test_name(s, cls + '_parses_a_line')}() -> None:\n"
            f"    parser = {instance}()\n"
            f"    assert parser.parse({sample}) == {expected}\n"
            '    assert parser.parse("   ") is None\n'
        )
        return imports, code, test
    if body == "send" and _SMTP_WORDS.search(_text(s, path) + cls):
        prefix = "SMTP"
        s.env_vars.update(
            {f"{prefix}_HOST": "localhost", f"{prefix}_PORT": "25", f"{prefix}_FROM": "noreply@localhost"}
        )
        imports = "import os\nimport smtplib\nfrom email.message import EmailMessage\n"
        code = (
            "    def __init__(self, host: str | None = None, port: int | None = None) -> None:\n"
            '        self.host = host or os.environ.get("SMTP_HOST", "localhost")\n'
            '        self.port = port or int(os.environ.get("SMTP_PORT", "25"))\n'
            '        self.sender = os.environ.get("SMTP_FROM", "noreply@localhost")\n\n'
            "    def build(self, message: dict[str, object]) -> EmailMessage:\n"
            '        """The e-mail for `message` ({"to", "subject", "body"})."""\n'
            "        email = EmailMessage()\n"
            '        email["From"] = self.sender\n'
            '        email["To"] = str(message["to"])\n'
            '        email["Subject"] = str(message.get("subject", ""))\n'
            '        email.set_content(str(message.get("body", "")))\n'
            "        return email\n\n"
            "    def send(self, message: dict[str, object]) -> dict[str, object]:\n"
            '        """Send `message` through the SMTP server (SMTP_HOST, SMTP_PORT)."""\n'
            "        email = self.build(message)\n"
            "        with smtplib.SMTP(self.host, self.port, timeout=10) as server:\n"
            "            server.send_message(email)\n"
            '        return {"to": email["To"], "sent": True}\n'
        )
        test = (
            f"\n\ndef {test_name(s, cls + '_builds_the_email')}() -> None:\n"
            f'    email = {instance}(host="smtp.invalid").build(\n'
            '        {"to": "ops@example.com", "subject": "Hello", "body": "It works."}\n'
            "    )\n"
            '    assert email["To"] == "ops@example.com"\n'
            '    assert email["Subject"] == "Hello"\n'
            '    assert email.get_content().strip() == "It works."\n'
        )
        return imports, code, test
    if body in {"send", "call"} and (body == "call" or _HTTP_WORDS.search(_text(s, path) + cls)):
        variable = snake(cls).upper() + "_URL"
        s.env_vars[variable] = "http://localhost:8080"
        imports = "import json\nimport os\nimport urllib.request\n"
        if body == "send":
            code = (
                "    def __init__(self, url: str | None = None, timeout: float = 10.0) -> None:\n"
                f'        self.url = url or os.environ.get("{variable}", "http://localhost:8080")\n'
                "        self.timeout = timeout\n\n"
                "    def build(self, message: dict[str, object]) -> urllib.request.Request:\n"
                '        """The POST of `message` as JSON to the URL."""\n'
                "        data = json.dumps(message).encode()\n"
                '        headers = {"Content-Type": "application/json"}\n'
                '        return urllib.request.Request(self.url, data=data, headers=headers, method="POST")\n\n'
                "    def send(self, message: dict[str, object]) -> dict[str, object]:\n"
                f'        """POST `message` to {variable}."""\n'
                "        with urllib.request.urlopen(self.build(message), timeout=self.timeout) as answer:\n"
                '            return {"status": answer.status, "sent": True}\n'
            )
            test = (
                f"\n\ndef {test_name(s, cls + '_builds_the_post')}() -> None:\n"
                f'    request = {instance}(url="http://collector.invalid/in").build({{"id": 1}})\n'
                '    assert request.get_method() == "POST"\n'
                '    assert request.full_url == "http://collector.invalid/in"\n'
                '    assert json.loads(request.data) == {"id": 1}\n'
            )
            return imports, code, test
        code = (
            "    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:\n"
            f'        self.base_url = (base_url or os.environ.get("{variable}", "http://localhost:8080")).rstrip("/")\n'
            "        self.timeout = timeout\n\n"
            "    def build_request(self, path: str, payload: dict[str, object] | None = None) -> urllib.request.Request:\n"
            '        """GET `path`, or POST `payload` to it as JSON."""\n'
            "        url = f\"{self.base_url}/{path.lstrip('/')}\"\n"
            "        if payload is None:\n"
            '            return urllib.request.Request(url, method="GET")\n'
            "        data = json.dumps(payload).encode()\n"
            '        headers = {"Content-Type": "application/json"}\n'
            '        return urllib.request.Request(url, data=data, headers=headers, method="POST")\n\n'
            "    def call(self, path: str, payload: dict[str, object] | None = None) -> object:\n"
            f'        """The decoded JSON answer of {variable}/`path`."""\n'
            "        request = self.build_request(path, payload)\n"
            "        with urllib.request.urlopen(request, timeout=self.timeout) as answer:\n"
            '            return json.loads(answer.read() or b"null")\n'
        )
        test = (
            f"\n\ndef {test_name(s, cls + '_builds_requests')}() -> None:\n"
            f'    client = {instance}(base_url="http://api.invalid/v1/")\n'
            '    assert client.build_request("items").full_url == "http://api.invalid/v1/items"\n'
            '    posted = client.build_request("/items", {"name": "x"})\n'
            '    assert posted.get_method() == "POST"\n'
            '    assert json.loads(posted.data) == {"name": "x"}\n'
        )
        return imports, code, test
    if body == "send":
        code = (
            "    def __init__(self) -> None:\n"
            "        self.outbox: list[dict[str, object]] = []\n\n"
            "    def send(self, message: dict[str, object]) -> dict[str, object]:\n"
            '        """Hand `message` on; kept in `outbox` in the order sent."""\n'
            "        self.outbox.append(dict(message))\n"
            '        return {"sent": True, "count": len(self.outbox)}\n'
        )
        test = (
            f"\n\ndef {test_name(s, cls + '_sends')}() -> None:\n"
            f"    sender = {instance}()\n"
            '    assert sender.send({"id": 1}) == {"sent": True, "count": 1}\n'
            '    assert sender.outbox == [{"id": 1}]\n'
        )
        return "", code, test
    code = (
        "    def __init__(self) -> None:\n"
        "        self.history: list[dict[str, object]] = []\n\n"
        f"    def {method}(self, payload: dict[str, object]) -> dict[str, object]:\n"
        f'        """{summary} Returns the result and keeps it in `history`."""\n'
        f'        result: dict[str, object] = {{"by": type(self).__name__, "input": dict(payload), "ok": True}}\n'
        "        self.history.append(result)\n"
        "        return result\n"
    )
    test = (
        f"\n\ndef {test_name(s, cls + '_' + method)}() -> None:\n"
        f"    unit = {instance}()\n"
        f'    result = unit.{method}({{"id": 1}})\n'
        f'    assert result == {{"by": "{cls}", "input": {{"id": 1}}, "ok": True}}\n'
        "    assert unit.history == [result]\n"
    )
    return "", code, test


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().replace('"', "'").replace("\\", "/")[:150]
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _class_block(s: Scaffolder, path: str, cls: str, bases: str = "") -> tuple[str, str, str]:
    method, body = verb_of(s, path, cls)
    imports, code, test = _init_and_method(s, path, cls, method, body)
    doc = summary_line(s, path, cls)
    return imports, f'\n\nclass {cls}{bases}:\n    """{doc}"""\n\n{code}', test


def w_classes(s: Scaffolder, path: str) -> Unit:
    names = named_classes(s, path) or [derived_class(s, path)]
    imports: list[str] = []
    blocks: list[str] = []
    tests: list[str] = []
    for cls in names[:4]:
        more, block, test = _class_block(s, path, cls)
        imports.extend(line for line in more.splitlines(keepends=True) if line not in imports)
        blocks.append(block)
        tests.append(test)
    return Unit(("\n" + "".join(imports) if imports else "") + "".join(blocks), "".join(tests))


# --- base classes and the handlers beside them -------------------------------------------------------


def _is_base(s: Scaffolder, path: str) -> bool:
    text = _text(s, path).lower()
    return s.roles.get(path) in {"module", "service"} and (
        stem(path) in {"base", "abstract", "interface", "interfaces"} or "abstract" in text
    )


def base_class(s: Scaffolder, path: str) -> str:
    names = named_classes(s, path)
    if names:
        return names[0]
    folder = _base(_dir(path))
    return camel(singular(folder)) if folder else "Base" + camel(stem(path))


def sibling_base(s: Scaffolder, path: str) -> tuple[str, str] | None:
    """(module, class) of the abstract base class in the module's folder, if there is one."""
    folder = _dir(path)
    for other in sorted(s.roles):
        if other != path and _dir(other) == folder and other.endswith(".py") and _is_base(s, other):
            return s.mod(other), base_class(s, other)
    return None


def w_base(s: Scaffolder, path: str) -> Unit:
    cls = base_class(s, path)
    method, _ = verb_of(s, path, cls)
    code = (
        "\nfrom abc import ABC, abstractmethod\n\n\n"
        f"class {cls}(ABC):\n"
        f'    """{summary_line(s, path, cls)} Subclasses implement `{method}`."""\n\n'
        "    @abstractmethod\n"
        f"    def {method}(self, payload: dict[str, object]) -> dict[str, object]:\n"
        '        """Do the work for one payload and return the result."""\n'
    )
    tests = (
        f"\n\ndef {test_name(s, cls + '_is_abstract')}() -> None:\n"
        f'    base = importlib.import_module("{s.mod(path)}").{cls}\n'
        "    with pytest.raises(TypeError):\n"
        "        base()\n"
    )
    return Unit(code, tests)


def _is_handler(s: Scaffolder, path: str) -> bool:
    return (
        s.roles.get(path) in {"module", "service"}
        and not path.endswith("__init__.py")
        and sibling_base(s, path) is not None
    )


def handler_class(s: Scaffolder, path: str) -> tuple[str, str, str]:
    """(class, base module, base class) of a module beside an abstract base."""
    found = sibling_base(s, path)
    assert found is not None
    module, base = found
    names = named_classes(s, path)
    cls = names[0] if names and names[0] != base else derived_class(s, path, suffix=_last_word(base))
    return cls, module, base


def w_handler(s: Scaffolder, path: str) -> Unit:
    cls, module, base = handler_class(s, path)
    method, _ = verb_of(s, path, base)
    name = stem(path)
    code = (
        f"\nfrom {module} import {base}\n\n\n"
        f"class {cls}({base}):\n"
        f'    """{summary_line(s, path, cls)}"""\n\n'
        f'    name = "{name}"\n\n'
        f"    def {method}(self, payload: dict[str, object]) -> dict[str, object]:\n"
        f'        return {{"{snake(_last_word(base))}": self.name, "input": dict(payload), "ok": True}}\n'
    )
    tests = (
        f"\n\ndef {test_name(s, cls + '_' + method)}() -> None:\n"
        f'    module = importlib.import_module("{s.mod(path)}")\n'
        f"    unit = module.{cls}()\n"
        f'    assert isinstance(unit, importlib.import_module("{module}").{base})\n'
        f'    assert unit.{method}({{"id": 1}}) == {{"{snake(_last_word(base))}": "{name}", "input": {{"id": 1}}, '
        '"ok": True}\n'
    )
    return Unit(code, tests)


def package_registry(s: Scaffolder, init: str) -> Unit | None:
    """A package holding an abstract base and its handlers: its `__init__` maps names to handler classes."""
    folder = _dir(init)
    handlers = sorted(p for p in s.roles if _dir(p) == folder and p.endswith(".py") and _is_handler(s, p))
    if not handlers or not all(is_name(stem(p)) for p in handlers):
        return None
    base_module, base = sibling_base(s, handlers[0]) or ("", "")
    method, _ = verb_of(s, handlers[0], base)
    imports = [f"from {base_module} import {base}\n"]
    entries = []
    for path in handlers:
        cls = handler_class(s, path)[0]
        imports.append(f"from {s.mod(path)} import {cls}\n")
        entries.append(f'    "{stem(path)}": {cls},\n')
    registry = snake(_last_word(base)).upper() + "S"
    code = (
        "\n" + "".join(imports) + f"\n{registry}: dict[str, type[{base}]] = {{\n" + "".join(entries) + "}\n\n\n"
        f"def get_{snake(_last_word(base))}(name: str) -> {base}:\n"
        f'    """A new {_last_word(base).lower()} for `name` (KeyError for an unknown one)."""\n'
        f"    return {registry}[name]()\n"
    )
    first = stem(handlers[0])
    tests = (
        f"\n\ndef {test_name(s, stem(init) + '_registry')}() -> None:\n"
        f'    package = importlib.import_module("{s.mod(init)}")\n'
        f"    assert sorted(package.{registry}) == {sorted(stem(p) for p in handlers)!r}\n"
        f'    assert package.get_{snake(_last_word(base))}("{first}").{method}({{"id": 1}})["ok"] is True\n'
        "    with pytest.raises(KeyError):\n"
        f'        package.get_{snake(_last_word(base))}("unknown")\n'
    )
    return Unit(code, tests)


def is_name(text: str) -> bool:
    return text.isidentifier()


# --- jobs, workers, command lines, exceptions, helpers ----------------------------------------------

_GENERIC_JOB_STEMS = {"tasks", "task", "jobs", "job", "worker", "workers", "background", "__init__"}
_STOP_WORDS = {"the", "a", "an", "one", "this", "that", "our", "all", "each", "background", "scheduled", "celery"}


def job_functions(s: Scaffolder, path: str) -> list[str]:
    """The job functions of a module: those its description names (`- cleanup_old_exports task`), else
    one named after the module (`deliver.py` → `deliver`) or the description (`the nightly low-stock job`)."""
    named = re.findall(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\s+(?:job|task)s?\b", s.describe(path))
    found = [name for index, name in enumerate(named) if name not in named[:index] and is_name(name)]
    if found:
        return found[:8]
    name = stem(path)
    if name not in _GENERIC_JOB_STEMS and is_name(snake(name)):
        return [snake(name)]
    found_text = re.search(r"^(.*?)\b(?:jobs?|tasks?)\b", s.summary(path), re.IGNORECASE)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", found_text.group(1) if found_text else "") if w]
    words = [w.lower() for w in words if w.lower() not in _STOP_WORDS][-3:]
    return [snake("_".join(words))] if words else ["process"]


def trigger(s: Scaffolder, path: str, func: str) -> str:
    """APScheduler trigger arguments from the job's name (`nightly_summary`) or, for a module with one job,
    from its description (`runs every 5 minutes`); every 15 minutes otherwise."""
    text = func.replace("_", " ")
    if len(job_functions(s, path)) == 1:
        text += " " + s.describe(path)
    text = text.lower()
    if re.search(r"\bnightly\b|\bdaily\b|\bmidnight\b|\bevery night\b|\bevery day\b", text):
        return '"cron", hour=2'
    if re.search(r"\bhourly\b|\bevery hour\b", text):
        return '"interval", hours=1'
    if re.search(r"\bweekly\b|\bevery week\b", text):
        return '"cron", day_of_week="mon", hour=2'
    minutes = re.search(r"\bevery (\d{1,3}) minutes?\b", text)
    if minutes:
        return f'"interval", minutes={int(minutes.group(1))}'
    if re.search(r"\bevery minute\b", text):
        return '"interval", minutes=1'
    return '"interval", minutes=15'


def job_modules(s: Scaffolder) -> list[tuple[str, str]]:
    """(path, function) of every job module, for the scheduler to register."""
    return [
        (p, func) for p in sorted(s.roles) if s.roles[p] == "job" and is_name(stem(p)) for func in job_functions(s, p)
    ]


def _job_model(s: Scaffolder, path: str) -> Model | None:
    """A model of the job's own package, which its jobs write (sync ORMs only)."""
    if s.orm_async or s.orm == "none":
        return None
    folder = module_path(_dir(path))
    for model in s.models:
        if model.module.rsplit(".", 1)[0] == folder or model.module == folder:
            return model
    return None


_CLEANUP = re.compile(r"^(?:cleanup|clean|purge|prune|delete|expire|remove)(?:_|$)")


def _job_effect(s: Scaffolder, func: str, model: Model | None) -> tuple[str, str, str]:
    """(code, result entries, kind) of what a job does to its package's model: a cleanup job deletes old
    rows; a job whose name shares a word with the model records a row; other jobs only report."""
    if model is None:
        return "", "", "report"
    label = f'f"{func} {{started:%Y-%m-%d %H:%M}}"'
    if _CLEANUP.match(func):
        if s.orm == "django":
            code = (
                '    cutoff = started - timedelta(days=int(str((payload or {}).get("days", 30))))\n'
                f"    deleted, _ = {model.cls}.objects.filter(created_at__lt=cutoff).delete()\n"
            )
        else:
            code = (
                '    cutoff = started - timedelta(days=int(str((payload or {}).get("days", 30))))\n'
                "    with SessionLocal() as session:\n"
                f"        old = session.scalars(select({model.cls}).where({model.cls}.created_at < cutoff)).all()\n"
                "        for row in old:\n"
                "            session.delete(row)\n"
                "        session.commit()\n"
                "        deleted = len(old)\n"
            )
        return code, '        "deleted": deleted,\n', "cleanup"
    if not set(snake(model.cls).split("_")) & set(func.split("_")):
        return "", "", "report"
    if s.orm == "django":
        return f"    row = {model.cls}.objects.create(name={label})\n", '        "record": row.pk,\n', "record"
    code = (
        "    with SessionLocal() as session:\n"
        f"        row = {model.cls}(name={label})\n"
        "        session.add(row)\n"
        "        session.commit()\n"
    )
    return code, '        "record": row.id,\n', "record"


def w_job(s: Scaffolder, path: str) -> Unit:
    model = _job_model(s, path)
    names = job_functions(s, path)
    effects = {func: _job_effect(s, func, model) for func in names}
    kinds = {kind for _code, _extra, kind in effects.values()}
    celery = s.stack.queue == "celery"
    imports = [
        "import logging\n",
        "from datetime import UTC, datetime" + (", timedelta" if "cleanup" in kinds else "") + "\n",
    ]
    if celery:
        s.needs.add("celery")
        imports.append("from celery import shared_task\n")
    if model is not None and kinds - {"report"}:
        if s.orm == "sqlalchemy":
            if "cleanup" in kinds:
                imports.append("from sqlalchemy import select\n")
            imports.append(f"from {s.mod(s.database_path)} import SessionLocal\n")
        imports.append(f"from {model.module} import {model.cls}\n")
    named = len(names) > 1 or names[0] in s.describe(path)
    functions: list[str] = []
    tests: list[str] = []
    for func in names:
        code, extra, kind = effects[func]
        doc = _sentence(func.replace("_", " ")) if named else summary_line(s, path, "A background job")
        functions.append(
            "\n\n"
            + (f'@shared_task(name="{s.mod(path)}.{func}")\n' if celery else "")
            + f"def {func}(payload: dict[str, object] | None = None) -> dict[str, object]:\n"
            f'    """{doc} Runs in the background; returns what it did."""\n'
            "    started = datetime.now(UTC)\n"
            f'    logger.info("{func} started with %s", payload)\n' + code + "    return {\n"
            "        **(payload or {}),\n"
            f'        "job": "{func}",\n'
            '        "ok": True,\n'
            '        "started_at": started.isoformat(),\n' + extra + "    }\n"
        )
        tests.append(_job_test(s, path, func, kind, model))
    code = "\n" + "".join(imports) + "\nlogger = logging.getLogger(__name__)\n" + "".join(functions)
    return Unit(code, "".join(tests))


def _job_test(s: Scaffolder, path: str, func: str, kind: str, model: Model | None) -> str:
    celery = s.stack.queue == "celery"

    def run(payload: str) -> str:
        return f"module.{func}.apply(args=[{payload}]).get()" if celery else f"module.{func}({payload})"

    django = model is not None and s.orm == "django" and kind != "report"
    fixture = "db_session" if model is not None and s.orm == "sqlalchemy" and kind != "report" else ""
    out = (
        f"\n\n{'@pytest.mark.django_db' + chr(10) if django else ''}"
        f"def {test_name(s, 'job_' + func)}({fixture}) -> None:\n"
        f'    module = importlib.import_module("{s.mod(path)}")\n'
    )
    if kind == "cleanup":
        assert model is not None
        make = (
            f'    importlib.import_module("{model.module}").{model.cls}.objects.create(name="old")\n'
            if django
            else f'    db_session.add(importlib.import_module("{model.module}").{model.cls}(name="old"))\n'
            "    db_session.commit()\n"
        )
        not_yet, past = run('{"days": 1}'), run('{"days": -1}')
        return (
            out
            + make
            + f'    assert {not_yet}["deleted"] == 0  # not old yet\n'
            + f"    result = {past}\n"
            + f'    assert (result["job"], result["ok"], result["deleted"]) == ("{func}", True, 1)\n'
        )
    once = run('{"id": 1}')
    return (
        out
        + f"    result = {once}\n"
        + f'    assert (result["job"], result["ok"], result["id"]) == ("{func}", True, 1)\n'
        + ('    assert result["record"] >= 1\n' if kind == "record" else "")
    )


def _celery_app(s: Scaffolder) -> str | None:
    path = next((p for p in sorted(s.roles) if s.roles[p] == "celery_app"), None)
    if path is None:
        return None
    return f"{s.mod(path)}:app" if s.framework == "django" else f"{s.mod(path)}:celery_app"


def w_worker(s: Scaffolder, path: str) -> Unit:
    if s.stack.queue == "rq":
        s.needs.update({"rq", "redis"})
        code = (
            "\nfrom redis import Redis\nfrom rq import Queue, Worker\n\n"
            f"{_settings_import(s)}\n"
            'QUEUES = ("default",)\n\n\n'
            "def build_worker(connection: Redis | None = None) -> Worker:\n"
            '    """A worker for QUEUES on REDIS_URL (connects when it starts working)."""\n'
            "    connection = connection or Redis.from_url(settings.REDIS_URL)\n"
            "    return Worker([Queue(name, connection=connection) for name in QUEUES], connection=connection)\n\n\n"
            "def main() -> None:\n"
            "    build_worker().work()\n\n\n"
            'if __name__ == "__main__":\n'
            "    main()\n"
        )
        tests = (
            f"\n\ndef {test_name(s, 'worker_' + stem(path) + '_listens_on_its_queues')}() -> None:\n"
            f'    worker = importlib.import_module("{s.mod(path)}").build_worker()\n'
            '    assert worker.queue_names() == ["default"]\n'
        )
        return Unit(code, tests)
    app = _celery_app(s)
    if s.stack.queue == "celery" and app is not None:
        module, attribute = app.split(":")
        code = (
            f"\nfrom {module} import {attribute}\n\n"
            'ARGV = ["worker", "--loglevel=INFO"]\n\n\n'
            "def main() -> None:\n"
            '    """Run a Celery worker for the project\'s tasks (CELERY_BROKER_URL)."""\n'
            f"    {attribute}.worker_main(ARGV)\n\n\n"
            'if __name__ == "__main__":\n'
            "    main()\n"
        )
        tests = (
            f"\n\ndef {test_name(s, 'worker_' + stem(path) + '_uses_the_celery_app')}() -> None:\n"
            f'    module = importlib.import_module("{s.mod(path)}")\n'
            '    assert module.ARGV[0] == "worker"\n'
            f'    assert module.{attribute} is importlib.import_module("{module}").{attribute}\n'
        )
        return Unit(code, tests)
    queue = next((p for p in sorted(s.roles) if s.roles[p] == "queue"), None)
    work = f"from {s.mod(queue)} import work\n" if queue else ""
    step = "    return len(work())\n" if queue else "    return 0\n"
    code = (
        f"\nimport logging\nimport threading\n\n{work}\n"
        "logger = logging.getLogger(__name__)\n"
        "stop = threading.Event()\n\n\n"
        "def run_once() -> int:\n"
        '    """Run the jobs waiting now; returns how many ran."""\n'
        f"{step}\n\n"
        "def main(poll_seconds: float = 1.0) -> None:\n"
        '    """Run queued jobs until `stop` is set."""\n'
        "    while not stop.is_set():\n"
        "        if run_once():\n"
        '            logger.info("ran queued jobs")\n'
        "        stop.wait(poll_seconds)\n\n\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    )
    tests = (
        f"\n\ndef {test_name(s, 'worker_' + stem(path) + '_runs_once')}() -> None:\n"
        f'    assert importlib.import_module("{s.mod(path)}").run_once() == 0\n'
    )
    return Unit(code, tests)


def worker_command(s: Scaffolder) -> str | None:
    """The Procfile's `worker:` command, when the project has a queue to work on."""
    worker = next((p for p in sorted(s.roles) if s.roles[p] == "worker" and is_name(stem(p))), None)
    if worker is not None and (s.stack.queue in {"rq", "celery"} or any(r == "queue" for r in s.roles.values())):
        return f"{s.run_prefix()}python -m {s.mod(worker)}"
    app = _celery_app(s)
    if s.stack.queue == "celery" and app is not None:
        return f"{s.run_prefix()}celery -A {app.split(':')[0]} worker --loglevel=INFO"
    return None


def cli_commands(s: Scaffolder, path: str) -> list[str]:
    text = s.describe(path)
    prog = s.mod(path).split(".")[0]
    found: list[str] = []
    for pattern in (rf"python -m {re.escape(s.mod(path))}\s+([a-z][\w-]*)", rf"\b{re.escape(prog)}\s+([a-z][\w-]*)"):
        for match in re.finditer(pattern, text):
            word = match.group(1)
            if word not in found and word not in {"is", "and", "or", "the", "to", "with"}:
                found.append(word)
    return found[:5] or ["run"]


def w_cli(s: Scaffolder, path: str) -> Unit:
    prog = s.mod(path).split(".")[0] if stem(path) in {"cli", "__main__", "main", "commands"} else stem(path)
    commands = cli_commands(s, path)
    adds = "".join(
        f'    {snake(c)} = commands.add_parser("{c}", help="{c} the given inputs")\n'
        f'    {snake(c)}.add_argument("inputs", nargs="*", help="what to {c}")\n'
        for c in commands
    )
    code = (
        "\nimport argparse\nimport json\n\n"
        f'PROG = "{prog}"\n\n\n'
        "def build_parser() -> argparse.ArgumentParser:\n"
        "    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)\n"
        '    commands = parser.add_subparsers(dest="command", required=True)\n'
        f"{adds}"
        "    return parser\n\n\n"
        "def main(argv: list[str] | None = None) -> int:\n"
        '    """Parse the command line, run the command and print its result as JSON; returns the exit code."""\n'
        "    args = build_parser().parse_args(argv)\n"
        '    print(json.dumps({"command": args.command, "inputs": args.inputs}))\n'
        "    return 0\n\n\n"
        'if __name__ == "__main__":\n'
        "    raise SystemExit(main())\n"
    )
    first = commands[0]
    tests = (
        f"\n\ndef {test_name(s, 'cli_' + stem(path) + '_' + first)}(capsys) -> None:\n"
        f'    cli = importlib.import_module("{s.mod(path)}")\n'
        f'    assert cli.main(["{first}", "example"]) == 0\n'
        f'    assert json.loads(capsys.readouterr().out) == {{"command": "{first}", "inputs": ["example"]}}\n'
        "    with pytest.raises(SystemExit):\n"
        "        cli.main([])\n"
    )
    return Unit(code, tests)


def w_exceptions(s: Scaffolder, path: str) -> Unit:
    parts = [part for part in s.mod(path).split(".")[:-1] if part not in {"src", "lib"}]
    named = [n for n in class_names(s.describe(path)) if n.endswith(("Error", "Exception"))]
    # "LedgerError hierarchy", "Base: ShopError": the first error the description names is the root
    if named and re.search(r"\bhierarch|\bbase\b|\broot\b|\bparent\b", s.describe(path), re.IGNORECASE):
        root = named.pop(0)
    else:
        root = f"{camel(parts[0]) if parts else 'App'}Error"
    named = [n for n in named if n != root]
    pairs = [
        ("NotFoundError", 404, "Something asked for does not exist."),
        ("InvalidInputError", 400, "The input is not valid."),
        ("ConflictError", 409, "The change conflicts with the current state."),
    ]
    pairs += [(n, 400, f"{n}.") for n in named if n not in {p[0] for p in pairs}]
    code = (
        f"\n\nclass {root}(Exception):\n"
        '    """The base of this project\'s errors; `status_code` is the HTTP status that fits."""\n\n'
        "    status_code = 500\n"
        + "".join(
            f'\n\nclass {name}({root}):\n    """{doc}"""\n\n    status_code = {status}\n' for name, status, doc in pairs
        )
    )
    tests = (
        f"\n\ndef {test_name(s, 'errors_' + stem(path))}() -> None:\n"
        f'    errors = importlib.import_module("{s.mod(path)}")\n'
        f"    assert issubclass(errors.NotFoundError, errors.{root})\n"
        "    assert errors.NotFoundError().status_code == 404\n"
        f"    with pytest.raises(errors.{root}):\n"
        '        raise errors.ConflictError("taken")\n'
    )
    return Unit(code, tests)


def w_utils(s: Scaffolder, path: str) -> Unit:
    code = (
        "\nimport re\nimport unicodedata\nfrom collections.abc import Iterable, Iterator\n"
        "from datetime import UTC, datetime\n\n\n"
        "def utcnow() -> datetime:\n"
        '    """The current time, timezone-aware (UTC)."""\n'
        "    return datetime.now(UTC)\n\n\n"
        "def slugify(text: str) -> str:\n"
        '    """`Hello, World!` → `hello-world` (ASCII letters, digits and dashes)."""\n'
        '    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()\n'
        '    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")\n\n\n'
        "def chunked(items: Iterable[object], size: int) -> Iterator[list[object]]:\n"
        '    """Lists of at most `size` items, in order."""\n'
        "    if size < 1:\n"
        '        raise ValueError("size must be at least 1")\n'
        "    chunk: list[object] = []\n"
        "    for item in items:\n"
        "        chunk.append(item)\n"
        "        if len(chunk) == size:\n"
        "            yield chunk\n"
        "            chunk = []\n"
        "    if chunk:\n"
        "        yield chunk\n"
    )
    tests = (
        f"\n\ndef {test_name(s, 'helpers_' + stem(path))}() -> None:\n"
        f'    helpers = importlib.import_module("{s.mod(path)}")\n'
        '    assert helpers.slugify("Héllo, World!") == "hello-world"\n'
        "    assert list(helpers.chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]\n"
        "    assert helpers.utcnow().tzinfo is not None\n"
    )
    return Unit(code, tests)


# --- the registry ------------------------------------------------------------------------------------

Matcher = Callable[["Scaffolder", str], bool]
KindWriter = Callable[["Scaffolder", str], Unit]
KINDS: list[tuple[str, Matcher, KindWriter]] = [
    ("job", lambda s, p: s.roles.get(p) == "job", w_job),
    ("worker", lambda s, p: s.roles.get(p) == "worker", w_worker),
    ("cli", lambda s, p: s.roles.get(p) == "cli", w_cli),
    ("exceptions", lambda s, p: s.roles.get(p) == "exceptions", w_exceptions),
    ("utils", lambda s, p: s.roles.get(p) == "utils", w_utils),
    ("store", _is_store, w_store),
    ("base", _is_base, w_base),
    ("handler", _is_handler, w_handler),
    ("classes", lambda s, p: True, w_classes),
]


def kind_of(s: Scaffolder, path: str) -> str:
    return next(name for name, matches, _ in KINDS if matches(s, path))


def write(s: Scaffolder, path: str, head: str) -> str:
    """The module: its docstring (`head`), then its kind's code; its tests are kept for the test modules."""
    for _name, matches, writer in KINDS:
        if matches(s, path):
            unit = writer(s, path)
            if unit.tests:
                s.unit_tests[path] = unit.tests
            return head + unit.code
    raise AssertionError("the last kind matches every module")
