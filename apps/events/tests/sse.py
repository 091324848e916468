"""A small server-sent events reader for the tests (what EventSource does, minus the browser)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


@dataclass
class Connection:
    status_code: int
    events: list[Event] = field(default_factory=list)
    ended_by_server: bool = False
    retry: int | None = None
    seconds: float = 0.0


def parse(lines: Iterable[str], into: Connection, stop: Callable[[Event], bool] | None = None) -> bool:
    """Read SSE lines into `into.events`; True when `stop` asked to end early."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data:
                event = Event(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))
                into.events.append(event)
                if stop is not None and stop(event):
                    return True
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "retry":
            into.retry = int(value)
        else:
            fields[name] = value
    return False


def read(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: str | None = None,
    stop: Callable[[Event], bool] | None = None,
    timeout: float = 30.0,
) -> Connection:
    """One connection: events until the server ends the stream or `stop(event)` is true."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    started = time.monotonic()
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        result = Connection(status_code=response.status_code)
        if response.status_code != 200:
            response.read()
            result.seconds = time.monotonic() - started
            return result
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        stopped = parse(response.iter_lines(), result, stop)
        result.ended_by_server = not stopped
    result.seconds = time.monotonic() - started
    return result


def follow(client: httpx.Client, url: str, *, deadline: float = 60.0) -> tuple[list[Event], list[Connection]]:
    """Reconnect as EventSource does, with Last-Event-ID, until the job's final status (or 204)."""
    events: list[Event] = []
    connections: list[Connection] = []
    last: str | None = None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        connection = read(client, url, last_event_id=last)
        connections.append(connection)
        if connection.status_code == 204:
            break
        assert connection.status_code == 200, connection
        events.extend(connection.events)
        ids = [e.id for e in connection.events if e.id is not None]
        last = ids[-1] if ids else last
        final = [e for e in connection.events if e.event == "status" and e.data["status"] in FINAL]
        if final:
            break
    else:
        raise AssertionError(f"no final status after {deadline}s: {events[-5:]}")
    return events, connections


FINAL = {"completed", "failed", "cancelled"}
