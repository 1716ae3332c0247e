# The billing portal's production image: `docker build -t billing-portal .`
# One image for every role (compose.yaml): `scripts/serve --migrate-only` (one-shot migration),
# `scripts/serve --no-migrate` (web), `litestar billing worker` (event worker). README "Deploying".

FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The runtime dependencies only: no dev tools, no `local` stand-ins (embedded PostgreSQL, mock provider).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY app ./app
COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
COPY scripts/serve ./scripts/serve
COPY piccolo_conf.py plans.toml portal.toml ./
# The catalogs of the page languages are compiled here, never committed (README "Languages").
RUN .venv/bin/pybabel -q compile -d app/translations

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --home-dir /app billing
WORKDIR /app
COPY --from=build --chown=root:root /app /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    DATA_DIR=/tmp/billing \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["scripts/serve"]
