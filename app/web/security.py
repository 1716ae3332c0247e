"""The outermost layer of every HTTP request: trusted proxy headers, a request id, security headers.

`wrap_app(app, settings)` (called once by `app.asgi.create_app`) puts two ASGI middlewares around
Litestar's own handler, so they also cover 404s and error pages that never reach a route:

1. uvicorn's `ProxyHeadersMiddleware` (outermost): believes `X-Forwarded-For` / `X-Forwarded-Proto`
   only from the addresses in `TRUSTED_PROXIES` (none by default), whatever server runs the app.
2. `RequestContextMiddleware`: gives each request an id (`X-Request-ID` response header, the
   `request_id` of every log line, shown on error pages), writes one access-log line per request,
   and adds the security headers: a Content-Security-Policy without `unsafe-inline`
   (`frame-ancestors 'none'`), `Referrer-Policy`, `X-Content-Type-Options`, `X-Frame-Options`,
   HSTS when `APP_BASE_URL` is https, and `Cache-Control: no-store` on responses to a signed-in
   person (or that carry a session cookie).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.settings import Settings
from app.web.logs import access_line, bind_request

_access_level = logging.getLogger("app.access")

STRIPE_HOSTED_ORIGINS = ("https://checkout.stripe.com", "https://billing.stripe.com")
# Answered below 400, these are logged at DEBUG only: assets, probes, Stripe's webhook deliveries
# (Stripe keeps its own log of every delivery; a refused one is logged as a warning by the endpoint)
# and the host API's reads (machine polling at high rates; counted and timed by
# `billing_host_api_request_seconds`; refused ones are logged at INFO with their error code).
QUIET_PATHS = ("/static/", "/healthz", "/metrics", "/webhooks/stripe", "/api/v1/customers/")


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    """The CSP of every page: only this origin's scripts and styles (no `unsafe-inline`), no framing.

    Forms may end on Stripe's hosted pages (Checkout, the Customer Portal; the emulator's origin when
    `STRIPE_API_BASE` is set) and on the identity provider (sign-out), because browsers apply
    `form-action` to the redirects that follow a form post.
    """
    form_targets = ["'self'", *STRIPE_HOSTED_ORIGINS]
    for extra in (_origin(settings.stripe.api_base), _origin(settings.oidc.issuer)):
        if extra and extra not in form_targets:
            form_targets.append(extra)
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self'",
        "form-action": " ".join(form_targets),
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "object-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """Headers added to every response (HSTS only when the app is served over https)."""
    headers = [
        (b"content-security-policy", content_security_policy(settings).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    ]
    if settings.app.is_https:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


def request_id_of(scope: Scope | dict[str, Any]) -> str | None:
    """The id `RequestContextMiddleware` gave this request (None outside a request)."""
    state = scope.get("state") or {}
    value = state.get("request_id")
    return str(value) if value else None


class RequestContextMiddleware:
    """Request id, access log line and security headers for every HTTP response (see module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, session_cookie: str = "billing_session") -> None:
        self.app = app
        self.headers = security_headers(settings)
        self.docs_headers = [h for h in self.headers if h[0] != b"content-security-policy"]
        self.docs_enabled = settings.app.api_docs != "off"
        self.session_cookie = session_cookie.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        bind_request(request_id=request_id)
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]
        # The schema pages (only with API_DOCS on) load their renderer from a CDN; they get no CSP.
        extra = self.docs_headers if self.docs_enabled and path.startswith("/schema") else self.headers

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers += [*extra, (b"x-request-id", request_id.encode())]
                if self._is_personal(scope, headers):
                    headers = [h for h in headers if h[0].lower() not in {b"cache-control", b"expires"}]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            level = logging.DEBUG if path.startswith(QUIET_PATHS) and status < 400 else logging.INFO
            # Ask first: a webhook delivery would otherwise pay for a line nobody sees.
            if _access_level.isEnabledFor(level):
                access_line(
                    level,
                    method=scope.get("method", "GET"),
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    client=(scope.get("client") or ("-",))[0],
                )
            structlog.contextvars.clear_contextvars()

    def _is_personal(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> bool:
        session = scope.get("session")
        if isinstance(session, dict) and session.get("user_id") is not None:
            return True
        prefix = self.session_cookie + b"="
        return any(name.lower() == b"set-cookie" and value.startswith(prefix) for name, value in headers)


def wrap_app(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` behind the request-context layer, itself behind the trusted-proxy layer when
    `TRUSTED_PROXIES` is set (so access-log lines and rate limits see the real client address)."""
    wrapped: ASGIApp = RequestContextMiddleware(app, settings)
    if settings.app.trusted_proxies:
        proxied: Any = ProxyHeadersMiddleware(wrapped, trusted_hosts=list(settings.app.trusted_proxies))  # type: ignore[arg-type]
        wrapped = proxied
    return wrapped
