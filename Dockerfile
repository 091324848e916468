# One image for web, worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=core.settings.production \
    GENERATED_PROJECTS_DIR=/srv/generated-projects KILN_DATA_DIR=/srv/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends git curl bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 kiln

WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/production.txt
COPY . .
# PYTHONDONTWRITEBYTECODE keeps the running (non-root) processes from writing .pyc files,
# so compile Kiln's own modules once here: every web, worker and CLI process starts faster.
RUN python -m compileall -q -x '/builtin_templates/' apps core manage.py \
    && mkdir -p /srv/generated-projects /srv/data && chown -R kiln:kiln /srv \
    && DJANGO_SECRET_KEY=build-only-collectstatic-key-0123456789abcdefghijklmnop \
       python manage.py collectstatic --noinput -v 0
USER kiln
EXPOSE 8000
# the ASGI application: Django and the MCP endpoint (/mcp), under gunicorn with uvicorn workers
CMD ["gunicorn", "core.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]
