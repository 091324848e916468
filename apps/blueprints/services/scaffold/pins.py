"""The versions generated projects pin: each installs on Python 3.11+ from the package index.

Exact pins, so a generated project installs the same way tomorrow; `requirements.txt` lists
only what the generated code imports (or, for servers and drivers, runs).
"""

from __future__ import annotations

PINS: dict[str, str] = {
    "fastapi": "fastapi==0.165.0",
    "uvicorn": "uvicorn==0.54.0",
    "httpx2": "httpx2==2.17.0",  # what starlette.testclient (FastAPI's TestClient) asks for
    "pydantic": "pydantic==2.14.4",
    "sqlalchemy": "SQLAlchemy==2.1.9",
    "sqlalchemy_async": "SQLAlchemy[asyncio]==2.1.9",
    "aiosqlite": "aiosqlite==0.22.1",
    "alembic": "alembic==1.20.1",
    "apscheduler": "APScheduler==3.11.3",
    "celery": "celery==5.7.0",
    "rq": "rq==3.0.0",
    "redis": "redis==8.1.0",
    "flask": "Flask==3.1.3",
    "django": "Django==5.2.19",
    "pytest": "pytest==9.2.0",
    "pytest_django": "pytest-django==4.14.0",
}
