"""The app factory: every controller, plugin, middleware, handler and lifespan hook, in one place.

Run with `uvicorn app.asgi:create_app --factory` (what `make run` does), or `litestar run`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from litestar import Litestar, Request, Router
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.accounts.controller import AccountController
from app.admin.branding_service import BrandingCache
from app.admin.controller import ADMIN_CONTROLLERS
from app.api.admin import AdminApiController
from app.api.auth import provide_api_user
from app.api.billing import BillingApiController
from app.api.compat import CompatibilityController
from app.api.errors import JSON_PATH_PREFIXES, with_api_envelope
from app.api.me import MeApiController
from app.api.openapi import openapi_config
from app.api.portal import PortalApiController
from app.auth.controller import AuthController
from app.auth.oidc import OIDCClient
from app.billing.controller import CheckoutController
from app.cli import BillingCLIPlugin
from app.db import start_pool
from app.entitlements import service as entitlements
from app.entitlements.controller import HostApiController, HostApiFastPath, host_rate_limit
from app.entitlements.delivery import HostWebhookDelivery
from app.history.controller import HistoryController
from app.metrics import MetricsController
from app.plans.controller import PlansController
from app.portal.controller import PortalController
from app.settings import PROJECT_ROOT, Settings, SettingsError, production_problems
from app.stripe_gateway import StripeGateway
from app.web.dependencies import provide_current_user, provide_oidc
from app.web.errors import EXCEPTION_HANDLERS
from app.web.health import healthz
from app.web.i18n import check_catalogs
from app.web.logs import configure_logging
from app.web.pages import home, not_found, set_language
from app.web.security import wrap_app
from app.web.sessions import purge_expired_sessions, rate_limit_store, session_config, session_store
from app.web.templating import configure_engine
from app.web.validation import refuse_unstorable_input
from app.webhooks.controller import WebhookFastPath, stripe_webhook
from app.webhooks.worker import EventWorker
from piccolo_conf import DB

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the Litestar app from `settings` (default: read and validated from the environment).

    Raises:
        SettingsError: a required environment variable is missing or malformed, or (under
            `APP_ENV=production`) a setting is unsafe (`production_problems`).
        CatalogsMissing: the translations are not compiled (`make translations`).
    """
    settings = settings or Settings.from_env()
    if settings.app.is_production and (problems := production_problems(settings)):
        raise SettingsError("Refusing to start in production:\n  - " + "\n  - ".join(problems))
    configure_logging(settings.app)
    check_catalogs()
    if urlsplit(settings.oidc.issuer).scheme == "http" and urlsplit(settings.oidc.issuer).hostname in LOOPBACK_HOSTS:
        # Authlib refuses plain-http token endpoints; the local provider of `make run` is one.
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

    gateway = StripeGateway(settings.stripe)
    # The worker spends a budget of Stripe requests per second (pages have none: one call per click).
    worker = EventWorker(
        StripeGateway(settings.stripe, rate_limit=settings.stripe.rate_limit), settings.worker, mode="in-process"
    )
    entitlements.configure(settings.entitlements)
    delivery = HostWebhookDelivery()
    sessions = session_store(settings.app)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await start_pool(settings.database.pool_size)
        # What start-up built (modules, routes, templates, settings) lives as long as the process: move
        # it out of the garbage collector's sight, so a full collection scans only what requests
        # allocate. Without this, a full collection over ~145,000 start-up objects stalled requests for
        # up to 0.2 s on a loaded machine (see scripts/bench_state.py).
        gc.collect()
        gc.freeze()
        if settings.app.event_worker:
            worker.start()
            delivery.start()
        sweeper = asyncio.create_task(purge_expired_sessions(sessions), name="session-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            await worker.stop()
            await delivery.stop()
            await DB.close_connection_pool()

    template_config = TemplateConfig(
        directory=PROJECT_ROOT / "templates",
        engine=JinjaTemplateEngine,
        engine_callback=functools.partial(configure_engine, auto_reload=not settings.app.is_production),
    )
    oidc = OIDCClient(settings.oidc, redirect_uri=f"{settings.app.base_url}/auth/callback")

    branding = BrandingCache(settings.branding)

    async def before_request(request: Request[Any, Any, Any]) -> None:
        """Refuse input PostgreSQL cannot hold, then give pages the brand (name, colours, footer links)
        in `request.state.branding`."""
        refuse_unstorable_input(request)
        if not request.scope["path"].startswith("/static/"):
            request.state.branding = await branding.get()

    metrics = (
        PrometheusConfig(app_name="billing", prefix="billing", group_path=True, exclude=["^/metrics", "^/static/"])
        if settings.app.metrics
        else None
    )
    app = Litestar(
        route_handlers=[
            *([MetricsController] if metrics else []),
            home,
            set_language,
            not_found,
            healthz,
            AuthController,
            AccountController,
            PlansController,
            CheckoutController,
            PortalController,
            HistoryController,
            stripe_webhook,
            MeApiController,
            BillingApiController,
            PortalApiController,
            AdminApiController,
            CompatibilityController,
            *ADMIN_CONTROLLERS,
            Router(
                path="/",
                route_handlers=[HostApiController],
                middleware=[host_rate_limit(settings.entitlements.api_rate_limit).middleware],
            ),
            create_static_files_router(path="/static", directories=[PROJECT_ROOT / "static"], name="static"),
        ],
        dependencies={
            "oidc": Provide(provide_oidc, sync_to_thread=False),
            "current_user": Provide(provide_current_user),
            "api_user": Provide(provide_api_user),
            "stripe_gateway": Provide(lambda: gateway, sync_to_thread=False),
            "worker": Provide(lambda: worker, sync_to_thread=False),
            "run_worker": Provide(lambda: settings.app.event_worker, sync_to_thread=False),
        },
        state=State(
            {"settings": settings, "oidc": oidc, "stripe_gateway": gateway, "worker": worker, "branding": branding}
        ),
        request_class=HTMXRequest,
        before_request=before_request,
        plugins=[HTMXPlugin(), FlashPlugin(config=FlashConfig(template_config=template_config)), BillingCLIPlugin()],
        middleware=[*([metrics.middleware] if metrics else []), session_config(settings.app).middleware],
        stores={"sessions": sessions, "rate_limit": rate_limit_store(settings.app)},
        csrf_config=CSRFConfig(
            secret=settings.app.session_secret,
            cookie_name="billing_csrf",
            cookie_secure=settings.app.is_https,
            cookie_httponly=True,
            cookie_samesite="lax",
            # The JSON routes check CSRF themselves, for cookie callers only (app/api/auth.py).
            exclude=["/webhooks/", "/healthz", *(f"^{p}" for p in JSON_PATH_PREFIXES)],
        ),
        template_config=template_config,
        # zlib's default level: a page's gzip is within 1 % of level 9's (Litestar's default) in about
        # two thirds of the CPU time (0.14 against 0.22 ms for the payment history).
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024, gzip_compress_level=6),
        exception_handlers=with_api_envelope(EXCEPTION_HANDLERS),
        openapi_config=openapi_config(settings),
        lifespan=[lifespan],
        # structlog owns logging (configure_logging above); unexpected errors are logged by
        # app.web.errors.internal_error_handler with the request id.
        logging_config=None,
        debug=False,
    )
    # Outside Litestar's router, so 404s and error pages get the request id and headers too.
    # Stripe's deliveries and the host API's reads are answered by lean layers (no session, CSRF,
    # compression or DI): see WebhookFastPath and HostApiFastPath.
    lean = HostApiFastPath(app.asgi_handler, app, settings.entitlements.api_rate_limit)
    app.asgi_handler = wrap_app(WebhookFastPath(lean, app.state), settings)
    return app
