"""The compiled-code store: one file per template version, reused across processes, never trusted blindly."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from jinja2 import Environment

from apps.projects.services import project_generator
from apps.projects.services.code_store import MAGIC, CompiledCodeStore
from apps.projects.services.generation import _prepared
from apps.projects.services.project_generator import NullSink, ProjectGenerator, clear_template_cache

pytestmark = pytest.mark.django_db

FILES = {
    "README.md": "# {{ name }}\n{% for i in range(3) %}{{ i }}{% endfor %}\n",
    "src/{{ name }}/__init__.py": "NAME = {{ name | tojson }}\n",
    "src/{{ name }}/util.py": "# {{ name | upper }}\n",
    "plain.txt": "no markers\n",
}
PARAMS = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}


@pytest.fixture
def compiles(monkeypatch):
    """Counts Jinja compilations made by the generator."""
    calls = {"n": 0}
    original = Environment.compile

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    return calls


def render(template, name="demo"):
    result = ProjectGenerator(_prepared(template)).render({"name": name}, NullSink())
    return {f.path: f.sha256 for f in result.files}


def fresh_process():
    clear_template_cache()  # what a new process starts with


def test_first_prepare_writes_one_file_and_later_processes_compile_nothing(make_template, settings, compiles):
    template = make_template(FILES, parameters=PARAMS)
    fresh_process()
    first = render(template)
    cache = Path(settings.KILN_TEMPLATE_CACHE_DIR)
    assert [p.name for p in cache.iterdir()] == [f"{template.checksum[:32]}.code"]
    # 3 rendered contents + 1 distinct templated segment ("{{ name }}")
    assert compiles["n"] == 4
    store = CompiledCodeStore(cache / f"{template.checksum[:32]}.code", in_memory=True)
    assert len(store) == 4

    fresh_process()
    compiles["n"] = 0
    assert render(template) == first
    assert compiles["n"] == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: b"garbage" * 100,
        lambda data: data[:-3] + b"XYZ",  # trailer magic broken
        lambda data: MAGIC + b"\x00" * 64,  # right magic, wrong Python/Jinja tag
        lambda data: data[:-16] + (10**12).to_bytes(8, "little") + MAGIC,  # index offset out of range
    ],
    ids=["empty", "truncated", "garbage", "trailer", "foreign-version", "bad-offset"],
)
def test_a_damaged_store_is_ignored_and_rewritten(make_template, settings, compiles, damage):
    template = make_template(FILES, parameters=PARAMS)
    fresh_process()
    expected = render(template)
    path = Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{template.checksum[:32]}.code"
    path.write_bytes(damage(path.read_bytes()))

    fresh_process()
    compiles["n"] = 0
    assert render(template) == expected
    assert compiles["n"] == 4  # recompiled everything
    assert len(CompiledCodeStore(path, in_memory=True)) == 4  # and the store is whole again

    fresh_process()
    compiles["n"] = 0
    render(template)
    assert compiles["n"] == 0


def test_an_edited_source_is_recompiled_even_under_the_same_checksum(make_template, settings, compiles):
    template = make_template(FILES, parameters=PARAMS)
    fresh_process()
    render(template)
    (Path(settings.KILN_TEMPLATES_DIR) / template.source_path / "README.md").write_text("changed {{ name }}\n")

    fresh_process()
    compiles["n"] = 0
    prepared = _prepared(template)
    result = ProjectGenerator(prepared).render({"name": "x"}, NullSink())
    assert compiles["n"] == 1  # only the edited file
    readme = next(f for f in result.files if f.path == "README.md")
    assert readme.size == len("changed x\n")


def test_large_templates_read_code_per_render_and_survive_a_removed_store(make_template, settings, compiles):
    settings.KILN_RENDER_MEMORY_LIMIT = 0  # render in this process, where the compile counter can see it
    template = make_template(FILES, parameters=PARAMS)
    fresh_process()
    expected = render(template)

    settings.KILN_TEMPLATE_MEMORY_CACHE_FILES = 1  # "large": compiled code is not kept in memory
    fresh_process()
    compiles["n"] = 0
    prepared = _prepared(template)
    assert prepared._compiled == {}
    assert render(template) == expected
    assert render(template) == expected
    assert compiles["n"] == 0  # contents came from the store, with pread, twice

    (Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{template.checksum[:32]}.code").unlink()
    fresh_process()
    prepared = _prepared(template)  # compiles and writes a new store
    prepared.store_path.unlink()
    prepared._store.close()
    compiles["n"] = 0
    assert ProjectGenerator(prepared).render({"name": "demo"}, NullSink()).content_sha256
    assert compiles["n"] == 3  # compiled again from the files, not failed


def test_syntax_errors_are_reported_and_nothing_is_stored(make_template, settings):
    template = make_template({"ok.txt": "{{ name }}", "bad.txt": "line1\n{% if %}\n"}, parameters=PARAMS)
    fresh_process()
    with pytest.raises(project_generator.GenerationFailed) as caught:
        _prepared(template)
    assert caught.value.code == "template_syntax_error"
    assert caught.value.extra == {"file": "bad.txt", "line": 2}
    assert list(Path(settings.KILN_TEMPLATE_CACHE_DIR).glob("*")) == []


# --- compiling on several cores (first generation of a large template) ------------------------

MANY = {f"src/m{i:03d}.py": f"# {{{{ name }}}} {i}\n{{% if name %}}X = {i}{{% endif %}}\n" for i in range(12)}


@pytest.fixture
def wide(settings):
    settings.KILN_COMPILE_PROCESSES = 3
    settings.KILN_PARALLEL_COMPILE_MIN_FILES = 4


def test_parallel_compile_gives_the_same_output_and_store_as_sequential(make_template, settings, wide, compiles):
    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    parallel = render(template)
    assert compiles["n"] == 4  # this process's share (1 of 3); two spawned helpers compiled the rest
    path = Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{template.checksum[:32]}.code"
    assert len(CompiledCodeStore(path, in_memory=True)) == 12
    path.unlink()

    settings.KILN_COMPILE_PROCESSES = 1
    fresh_process()
    assert render(template) == parallel
    assert len(parallel) == 12


@pytest.mark.parametrize("processes", [1, 3])
def test_the_first_syntax_error_in_file_order_is_reported_either_way(make_template, settings, wide, processes):
    settings.KILN_COMPILE_PROCESSES = processes
    files = dict(MANY)
    files["src/m007.py"] = "ok\n{% for %}\n"  # in a helper's share with 3 processes
    files["src/m009.py"] = "{{ }}\n"  # the caller's own share
    template = make_template(files, parameters=PARAMS)
    fresh_process()
    with pytest.raises(project_generator.GenerationFailed) as caught:
        _prepared(template)
    assert caught.value.code == "template_syntax_error"
    assert caught.value.extra == {"file": "src/m007.py", "line": 2}


@pytest.mark.parametrize(
    "command",
    [
        None,  # no process can be started at all
        ["/bin/false"],  # the helper fails
        ["/bin/echo", "not marshal"],  # the helper answers garbage
        [sys.executable, "-c", "import time; time.sleep(60)"],  # the helper hangs past the time limit
    ],
    ids=["no-processes", "helper-fails", "garbage", "helper-hangs"],
)
def test_a_failing_helper_only_means_compiling_here(make_template, settings, wide, monkeypatch, compiles, command):
    from apps.projects.services import parallel_compile

    def helper_command():
        if command is None:
            raise OSError("no processes for you")
        return command

    monkeypatch.setattr(parallel_compile, "helper_command", helper_command)
    settings.KILN_RENDER_TIME_LIMIT = 2
    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    started = time.monotonic()
    result = render(template)
    assert len(result) == 12
    assert compiles["n"] == 12  # every content compiled in this process instead
    assert time.monotonic() - started < 30
    settings.KILN_COMPILE_PROCESSES = 1
    (Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{template.checksum[:32]}.code").unlink()
    fresh_process()
    assert render(template) == result


@pytest.fixture
def spawned(monkeypatch):
    """Every compile helper process started, in order."""
    from apps.projects.services import parallel_compile

    helpers = []
    original = parallel_compile._Helper.__init__

    def recording(self, timeout):
        original(self, timeout)
        helpers.append(self)

    monkeypatch.setattr(parallel_compile._Helper, "__init__", recording)
    return helpers


def test_cold_helpers_start_before_the_files_are_read_and_do_the_compile(
    make_template, settings, wide, compiles, spawned, monkeypatch
):
    from apps.projects.services import parallel_compile

    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    events = []
    original_init = parallel_compile._Helper.__init__
    original_open = open

    def noting(self, timeout):
        events.append("spawn")
        original_init(self, timeout)

    def reading(path, *args, **kwargs):
        if str(path).endswith(".py"):
            events.append("read")
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(parallel_compile._Helper, "__init__", noting)
    monkeypatch.setattr(project_generator, "open", reading, raising=False)
    result = render(template)
    assert len(result) == 12
    assert events[:3] == ["spawn", "spawn", "read"]  # both helpers boot while the files are read
    assert events.count("spawn") == 2 and compiles["n"] == 4  # no second set; the helpers compiled 8 of 12
    assert all(helper.proc.poll() is not None for helper in spawned)


def test_helpers_started_for_a_cold_template_with_nothing_to_compile_are_stopped(
    make_template, settings, wide, compiles, spawned
):
    template = make_template({f"docs/page{i}.txt": f"plain text {i}\n" for i in range(8)}, parameters=PARAMS)
    fresh_process()
    result = render(template)
    assert len(result) == 8 and compiles["n"] == 0
    assert len(spawned) == 2
    for helper in spawned:
        assert helper.proc.poll() is not None  # killed on leaving the scan, not left running
        assert helper.thread is None  # never given a share


def test_no_helpers_for_a_warm_template(make_template, settings, wide, compiles, spawned):
    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    render(template)
    spawned.clear()
    fresh_process()  # the store exists now: a new process compiles nothing and starts no helper
    render(template)
    assert spawned == []


def test_large_templates_compile_in_smaller_batches_with_the_next_helpers_started_ahead(
    make_template, settings, wide, compiles, spawned, monkeypatch
):
    settings.KILN_TEMPLATE_MEMORY_CACHE_FILES = 5  # "large": no code kept in memory
    monkeypatch.setattr(project_generator, "_COMPILE_BATCH_LARGE", 4)
    from apps.projects.services import parallel_compile

    events = []
    original_send = parallel_compile._Helper.send

    def sending(self, share):
        events.append(("send", len(spawned)))
        original_send(self, share)

    monkeypatch.setattr(parallel_compile._Helper, "send", sending)
    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    result = render(template)
    assert len(result) == 12
    # three batches of 4, each shared with 2 helpers; every batch's helpers were already running
    # when it was sent (2 spawned ahead at the start, then 2 more as each batch but the last began)
    assert [count for _, count in events] == [4, 4, 6, 6, 6, 6]
    assert len(spawned) == 6 and all(helper.proc.poll() is not None for helper in spawned)
    path = Path(settings.KILN_TEMPLATE_CACHE_DIR) / f"{template.checksum[:32]}.code"
    assert len(CompiledCodeStore(path, in_memory=True)) == 12


def test_a_large_template_compiles_each_file_once_on_its_first_generation_and_never_again(
    make_template, settings, compiles
):
    settings.KILN_TEMPLATE_MEMORY_CACHE_FILES = 5  # code read from the store at each render
    settings.KILN_COMPILE_PROCESSES = 1
    template = make_template(MANY, parameters=PARAMS)
    fresh_process()
    first = render(template)
    assert compiles["n"] == 12  # compiled while preparing; the render read the store just written
    assert render(template) == first  # the same process, its prepared template cached
    assert render(template, name="other") != first
    assert compiles["n"] == 12
