"""Security headers on every response, a CSP the templates can live with, request ids, safe logs,
and the production refusal of unsafe settings."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import structlog

from app.asgi import create_app
from app.settings import PROJECT_ROOT, AppSettings, Settings, SettingsError, production_problems
from app.web.logs import access_line, bind_request, clear_request, configure_logging
from tests.conftest import settings_env, sign_in
from tests.support.oidc_provider import ScriptedProvider
from tests.support.servers import free_port, serve_in_loop


def csp_directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


def assert_security_headers(response: httpx.Response) -> None:
    csp = csp_directives(response)
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/", "/plans", "/no/such/page", "/static/css/app.css", "/healthz", "/auth/login"])
async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert_security_headers(response)
    # Served over http: no HSTS (it would pin browsers to an https that is not there).
    assert "strict-transport-security" not in response.headers


async def test_signed_in_pages_are_not_cached_but_anonymous_ones_may_be(client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/static/css/app.css")
    assert "no-store" not in anonymous.headers.get("cache-control", "")
    await sign_in(client)
    for path in ("/account", "/plans", "/billing/history", "/portal"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
        assert_security_headers(response)


@pytest.fixture
async def https_app_url(oidc_provider: ScriptedProvider, tmp_path: Path, db: None) -> AsyncIterator[str]:
    """The app configured for an https origin (as behind a TLS-terminating proxy), reached over http."""
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL="https://billing.example.com")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        yield base_url


async def test_hsts_is_sent_when_the_app_is_served_over_https(https_app_url: str) -> None:
    async with httpx.AsyncClient(base_url=https_app_url) as http:
        response = await http.get("/")
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert_security_headers(response)


TEMPLATES = sorted((PROJECT_ROOT / "templates").rglob("*.html"))
INLINE_CODE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"<[a-z][^>]*\shx-on[:-]", re.I), "an hx-on handler (needs eval)"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(PROJECT_ROOT / "templates")))
def test_templates_have_no_inline_code_the_csp_would_block(template: Path) -> None:
    text = template.read_text()
    for pattern, what in INLINE_CODE:
        assert not pattern.search(text), f"{template.name} has {what}; move it to static/"


def test_htmx_does_not_inject_its_indicator_styles() -> None:
    config = re.search(r"name=\"htmx-config\" content='([^']*)'", (PROJECT_ROOT / "templates/base.html").read_text())
    assert config is not None
    settings = json.loads(config.group(1))
    assert settings["includeIndicatorStyles"] is False and settings["allowEval"] is False


def test_api_docs_are_off_by_default_in_production() -> None:
    assert Settings.from_env(PRODUCTION_OK).app.api_docs == "off"
    assert Settings.from_env({**PRODUCTION_OK, "API_DOCS": "public"}).app.api_docs == "public"


async def test_error_pages_show_the_request_id_of_their_log_lines(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get("/no/such/page")
    request_id = response.headers["x-request-id"]
    assert f'<code data-testid="request-id">{request_id}</code>' in response.text
    lines = [r for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("request_id") == request_id]
    assert any(r.msg.get("event") == "request" and r.msg.get("status") == 404 for r in lines), caplog.records


def test_logs_are_json_in_production_and_never_carry_secrets() -> None:
    live_key = "sk_" + "live_abcDEF123"  # built here, so no live-looking key sits in the repository
    stream = io.StringIO()
    configure_logging(AppSettings(env="production"), stream=stream)
    try:
        logger = logging.getLogger("app.test")
        logger.warning(
            f"calling Stripe with {live_key} and whsec_Zm9vYmFy",
            extra={"stripe_request_id": "req_123", "authorization": "Bearer tok_123"},
        )
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
    finally:
        configure_logging(AppSettings())
    assert line["level"] == "warning" and line["logger"] == "app.test" and line["stripe_request_id"] == "req_123"
    assert live_key not in json.dumps(line) and "whsec_Zm9vYmFy" not in json.dumps(line)
    assert line["authorization"] == "[redacted]" and "[redacted]" in line["event"]


def test_access_lines_are_the_lines_structlog_would_write_and_reach_other_handlers_too() -> None:
    """`access_line` renders the request line itself (no standard-library record): the same JSON as
    structlog's own `app.access` logger gives, secrets masked; another handler on the root logger
    (pytest's capture, an operator's) still receives a record carrying the event dict."""
    stream, other = io.StringIO(), _Collect(level=logging.INFO)
    configure_logging(AppSettings(env="production"), stream=stream)
    logging.getLogger().addHandler(other)
    fields = {"method": "GET", "path": "/hook/whsec_Zm9vYmFy", "status": 200, "duration_ms": 1.5, "client": "10.0.0.9"}
    try:
        bind_request(request_id="r-1", user_id=7)
        structlog.get_logger("app.access").info("request", **fields)
        access_line(logging.INFO, **fields)
        access_line(logging.DEBUG, **fields)  # below the other handler's level: only the stream has it
    finally:
        clear_request()
        configure_logging(AppSettings())
    through_stdlib, direct, debug = (json.loads(line) for line in stream.getvalue().splitlines())
    assert through_stdlib.pop("timestamp") <= direct.pop("timestamp")
    assert list(direct.items()) == list(through_stdlib.items())
    assert direct["logger"] == "app.access" and direct["request_id"] == "r-1" and direct["user_id"] == 7
    assert direct["path"] == "/hook/[redacted]" and direct["level"] == "info" and debug["level"] == "debug"
    assert [(r.name, r.levelno, r.msg["status"], r.msg["path"]) for r in other.records] == [
        ("app.access", logging.INFO, 200, "/hook/[redacted]"),
        ("app.access", logging.INFO, 200, "/hook/[redacted]"),
    ]


def test_an_access_line_that_cannot_be_written_does_not_fail_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    configure_logging(AppSettings(env="production"), stream=stream)
    stream.close()  # a log pipe that went away
    try:
        access_line(logging.INFO, method="GET", path="/account", status=200, duration_ms=1.0, client="-")
    finally:
        configure_logging(AppSettings())
    assert "--- Logging error ---" in capsys.readouterr().err  # reported as the standard library reports one


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


PRODUCTION_OK = {
    "APP_ENV": "production",
    "APP_BASE_URL": "https://billing.example.com",
    "SESSION_SECRET": "Vq3kz8R2mX7pL9wT4yB6nH1cJ5dF0gSa",
    "AUTH0_DOMAIN": "acme.eu.auth0.com",
    "AUTH0_CLIENT_ID": "client",
    "AUTH0_CLIENT_SECRET": "a-real-client-secret",
    "STRIPE_SECRET_KEY": "sk_live_51Habc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "DATABASE_URL": "postgresql://billing@db:5432/billing",
}


def test_a_safe_production_configuration_passes() -> None:
    assert production_problems(Settings.from_env(PRODUCTION_OK)) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"APP_BASE_URL": "http://billing.example.com"}, "APP_BASE_URL"),
        ({"STRIPE_API_BASE": "http://localhost:12111"}, "STRIPE_API_BASE"),
        ({"STRIPE_SECRET_KEY": "sk_test_emulator"}, "development default"),
        ({"SESSION_SECRET": "x" * 40}, "SESSION_SECRET"),
        ({"API_DOCS": "on"}, "API_DOCS"),
        ({"AUTH0_DOMAIN": "", "OIDC_ISSUER": "http://localhost:9400"}, "issuer"),
    ],
)
def test_production_refuses_unsafe_settings(change: dict[str, str], named: str) -> None:
    settings = Settings.from_env({**PRODUCTION_OK, **change})
    assert any(named in problem for problem in production_problems(settings))
    with pytest.raises(SettingsError, match="Refusing to start in production"):
        create_app(settings)


@pytest.mark.parametrize(
    ("trusted_proxies", "forwarded_for", "status"),
    [
        ("", None, 403),  # the test client's own address is not Stripe's
        ("", "3.18.12.63", 403),  # a forwarded header from an untrusted peer is ignored
        ("127.0.0.1", "3.18.12.63", 400),  # through a trusted proxy from Stripe: on to the signature check
        ("127.0.0.1", "203.0.113.9", 403),
    ],
)
async def test_webhook_source_allowlist_honours_only_trusted_proxies(
    oidc_provider: ScriptedProvider,
    tmp_path: Path,
    db: None,
    trusted_proxies: str,
    forwarded_for: str | None,
    status: int,
) -> None:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, WEBHOOK_SOURCE_ALLOWLIST="on", TRUSTED_PROXIES=trusted_proxies)
    headers = {"stripe-signature": "t=1,v1=00"} | ({"x-forwarded-for": forwarded_for} if forwarded_for else {})
    # As scripts/serve runs it: the server's own proxy-header handling off, the app's in charge.
    async with serve_in_loop(create_app(Settings.from_env(env)), port, proxy_headers=False) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.post("/webhooks/stripe", content=b"{}", headers=headers)
    assert response.status_code == status, response.text
