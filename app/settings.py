"""Settings read from the environment, validated once at start-up.

Each field is read from exactly one environment variable, named next to it. `Settings.from_env()`
raises `SettingsError` naming every missing or malformed variable, so a misconfigured deployment
fails at start with a message that says what to fix, never later with a stack trace.

The README's settings table lists the same variables; keep both in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """One or more environment variables are missing or malformed; the message names them."""


@dataclass(frozen=True)
class AppSettings:
    base_url: str = "http://localhost:8000"
    """`APP_BASE_URL`: the public origin of the app, used for OIDC callbacks and Stripe return URLs."""
    session_secret: str = ""
    """`SESSION_SECRET`: at least 32 characters; signs the CSRF token. Required."""
    data_dir: Path = PROJECT_ROOT / ".data"
    """`DATA_DIR`: where local state lives (embedded PostgreSQL, file sessions). Default `./.data`."""
    redis_url: str | None = None
    """`REDIS_URL`: Redis for server-side sessions; unset means a file store in `DATA_DIR`."""
    log_level: str = "INFO"
    """`LOG_LEVEL`: Python logging level name."""
    default_locale: str = "en_US"
    """`DEFAULT_LOCALE`: locale for money and dates when the browser sends no Accept-Language."""
    default_timezone: str = "UTC"
    """`DEFAULT_TIMEZONE`: IANA time zone used for dates shown to people."""
    portal_retention_coupon: str | None = None
    """`PORTAL_RETENTION_COUPON`: a Stripe coupon id offered when someone starts to cancel (optional)."""
    event_worker: bool = True
    """`EVENT_WORKER`: `in-process` (default) applies Stripe events inside each web process; `off`
    leaves them to `litestar billing worker` processes."""
    env: str = "development"
    """`APP_ENV`: `development` (default) or `production`; production refuses unsafe settings
    (`Settings.production_problems()`) and logs JSON."""
    trusted_proxies: tuple[str, ...] = ()
    """`TRUSTED_PROXIES`: addresses or CIDR ranges (comma-separated) whose `X-Forwarded-For` /
    `X-Forwarded-Proto` are believed; unset: none, the TCP peer is the client."""
    web_concurrency: int = 2
    """`WEB_CONCURRENCY`: web worker processes started by `scripts/serve`."""
    server: str = "granian"
    """`ASGI_SERVER`: `granian` (default) or `uvicorn`, the production server of `scripts/serve`."""
    host: str = "0.0.0.0"  # noqa: S104 (the production server listens on every interface of its container)
    """`HOST`: where `scripts/serve` listens (`make run`: 127.0.0.1)."""
    port: int = 8000
    """`PORT`: the port `scripts/serve` (and `make run`) listens on."""
    api_docs: str = "off"
    """`API_DOCS`: `off` (default), `on` (serve the OpenAPI schema and its pages under `/schema`;
    refused in production) or `public` (the explicit opt-in to serve them in production)."""
    metrics: bool = False
    """`METRICS`: `on` serves Prometheus metrics at `/metrics`; off by default."""
    webhook_source_allowlist: bool = False
    """`WEBHOOK_SOURCE_ALLOWLIST`: `on` accepts `POST /webhooks/stripe` only from Stripe's published
    webhook addresses (`app/webhooks/stripe_webhook_ips.txt`); off by default."""

    @property
    def is_production(self) -> bool:
        """True under `APP_ENV=production`."""
        return self.env == "production"

    @property
    def is_https(self) -> bool:
        """True when the app is served over https: cookies are then marked Secure."""
        return self.base_url.startswith("https://")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str | None = None
    """`DATABASE_URL`: PostgreSQL DSN. Unset: `make run` starts an embedded PostgreSQL in `DATA_DIR`."""
    pool_size: int = 10
    """`DATABASE_POOL_SIZE`: connections each process keeps open at most (no request ever holds one
    while it waits on Stripe, so a small pool serves many concurrent requests)."""


@dataclass(frozen=True)
class WorkerSettings:
    poll_seconds: float = 1.0
    """`WORKER_POLL_SECONDS`: how often an idle worker looks for due events (a webhook wakes it at once)."""
    concurrency: int = 4
    """`WORKER_CONCURRENCY`: customer syncs one worker process runs at the same time."""
    lease_seconds: int = 120
    """`EVENT_LEASE_SECONDS`: how long a claimed event stays `processing` before another worker may take
    it back (only matters when a worker process dies mid-sync)."""
    retry_hours: float = 72.0
    """`EVENT_RETRY_HOURS`: failing events are retried (backoff 5 s doubling up to 1 h) for this long after
    they arrived, then marked `dead` (replayable). Stripe itself retries deliveries for 3 days."""
    stale_seconds: float = 30.0
    """`WORKER_STALE_SECONDS`: `/healthz` (and `litestar billing worker --check`) answer unhealthy when the
    worker loop has not turned for this long."""
    max_event_delay_seconds: float = 300.0
    """`EVENT_MAX_DELAY_SECONDS`: unhealthy when a due event has waited this long past its due time."""
    reconcile_minutes: float = 5.0
    """`EVENT_RECONCILE_MINUTES`: how often one worker (one at a time) stores and applies the events Stripe
    could not deliver (`delivery_success=false`); 0 turns it off."""


@dataclass(frozen=True)
class OIDCSettings:
    issuer: str = ""
    """From `AUTH0_DOMAIN` (issuer `https://<domain>/`) or `OIDC_ISSUER` (any OpenID provider)."""
    client_id: str = ""
    """`AUTH0_CLIENT_ID`: the OAuth client id; also the ID token's expected audience."""
    client_secret: str = ""
    """`AUTH0_CLIENT_SECRET`: the OAuth client secret."""
    is_auth0: bool = False
    """True when configured through `AUTH0_DOMAIN` (logout falls back to Auth0's `/v2/logout`)."""
    scope: str = "openid profile email"
    """`OIDC_SCOPE`: scopes requested at sign-in."""
    http_timeout: float = 10.0
    """`OIDC_HTTP_TIMEOUT`: seconds to wait for the provider's discovery, JWKS and token endpoints."""
    roles_claim: str = "roles"
    """`OIDC_ROLES_CLAIM`: the ID token claim holding the person's roles (a list, or a space/comma
    separated string), e.g. Auth0's namespaced `https://billing.example.com/roles`. Read at each sign-in."""
    admin_subjects: tuple[str, ...] = ()
    """`ADMIN_SUBJECTS`: comma-separated OIDC subjects that are always `admin` (bootstrap)."""
    admin_emails: tuple[str, ...] = ()
    """`ADMIN_EMAILS`: comma-separated emails that are always `admin`, only when the provider says verified."""


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str = ""
    """`STRIPE_SECRET_KEY`: `sk_test_…` or `sk_live_…` (also restricted `rk_…`)."""
    publishable_key: str = ""
    """`STRIPE_PUBLISHABLE_KEY`: `pk_…`; shown to browsers only where Stripe.js would need it."""
    webhook_secrets: tuple[str, ...] = ()
    """`STRIPE_WEBHOOK_SECRET`: one or more `whsec_…`, comma-separated (several during rotation)."""
    api_base: str | None = None
    """`STRIPE_API_BASE`: base URL of the Stripe API; unset means Stripe itself. The emulator's URL."""
    timeout: float = 20.0
    """`STRIPE_TIMEOUT`: seconds to wait for one Stripe API answer."""
    max_retries: int = 2
    """`STRIPE_MAX_RETRIES`: retries of a failed Stripe request (the SDK's own backoff, idempotent keys)."""
    rate_limit: float = 0.0
    """`STRIPE_RATE_LIMIT`: Stripe API requests per second one event worker process may make (its budget);
    default 20 for test keys and 80 for live keys, below Stripe's limits (25 and 100)."""

    @property
    def livemode(self) -> bool:
        """True for live keys: webhook events whose `livemode` differs are refused."""
        return "_live_" in self.secret_key


@dataclass(frozen=True)
class HostWebhookTarget:
    url: str
    secret: str


@dataclass(frozen=True)
class EntitlementSettings:
    grace_days: int = 7
    """`ENTITLEMENT_GRACE_DAYS`: days a `past_due` subscription keeps its features after its period started."""
    webhook_endpoints: tuple[HostWebhookTarget, ...] = ()
    """`HOST_WEBHOOK_ENDPOINTS`: `<url> <whsec_…>` pairs, comma-separated: where `customer.state_changed` goes."""
    api_rate_limit: int = 600
    """`HOST_API_RATE_LIMIT`: requests per minute per host API key."""


@dataclass(frozen=True)
class ApiSettings:
    audience: str = "http://localhost:8000/api"
    """`API_AUDIENCE`: the `aud` a bearer access token must carry (Auth0: the API's identifier).
    Default `<APP_BASE_URL>/api`."""
    allowed_origins: tuple[str, ...] = ("http://localhost:8000",)
    """`API_ALLOWED_ORIGINS`: origins (`scheme://host[:port]`, comma-separated) that return and success
    URLs given by API clients may point at. Default: `APP_BASE_URL`'s origin."""


@dataclass(frozen=True)
class BrandingSettings:
    """Defaults of the app's own look; operators change them in `/admin/branding` (stored in the database)."""

    product_name: str = "Billing"
    """`BRAND_NAME`: the product name in the header and page titles."""
    primary_color: str = "#4338ca"
    """`BRAND_PRIMARY_COLOR`: `#rrggbb` of buttons and links (white text on it must pass WCAG AA)."""
    accent_color: str = "#146c43"
    """`BRAND_ACCENT_COLOR`: `#rrggbb` of highlights (white text on it must pass WCAG AA)."""
    logo_url: str | None = None
    """`BRAND_LOGO_URL`: an https URL of the logo shown in the header (optional)."""
    support_url: str | None = None
    """`SUPPORT_URL`: footer link to support (optional)."""
    privacy_url: str | None = None
    """`PRIVACY_URL`: footer link to the privacy policy (optional)."""
    terms_url: str | None = None
    """`TERMS_URL`: footer link to the terms of service (optional)."""


@dataclass(frozen=True)
class Settings:
    app: AppSettings = field(default_factory=AppSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    oidc: OIDCSettings = field(default_factory=OIDCSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    entitlements: EntitlementSettings = field(default_factory=EntitlementSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    branding: BrandingSettings = field(default_factory=BrandingSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default `os.environ`).

        Raises:
            SettingsError: listing every missing or malformed variable by name.
        """
        env = os.environ if env is None else env
        errors: list[str] = []

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def url(name: str, default: str | None = None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
            value = get(name, default)
            if value is None:
                return None
            parts = urlsplit(value)
            if parts.scheme not in schemes or not (parts.netloc or parts.query):
                errors.append(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
            return value

        def number(name: str, default: float, *, minimum: float = 0, integer: bool = False) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                errors.append(f"{name} must be {'a whole number' if integer else 'a number'}")
                return default
            if value < minimum:
                errors.append(f"{name} must be at least {minimum:g}")
                return default
            return value

        base_url = (url("APP_BASE_URL", "http://localhost:8000") or "").rstrip("/")
        session_secret = get("SESSION_SECRET")
        if session_secret is None:
            errors.append("SESSION_SECRET is required (at least 32 random characters)")
        elif len(session_secret) < 32:
            errors.append("SESSION_SECRET must be at least 32 characters long")

        log_level = (get("LOG_LEVEL", "INFO") or "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            errors.append("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")

        event_worker = (get("EVENT_WORKER", "in-process") or "in-process").lower()
        if event_worker not in {"in-process", "off"}:
            errors.append("EVENT_WORKER must be in-process or off")

        app_env = (get("APP_ENV", "development") or "development").lower()
        if app_env not in {"development", "production"}:
            errors.append("APP_ENV must be development or production")
        trusted_proxies = tuple(p.strip() for p in (get("TRUSTED_PROXIES") or "").split(",") if p.strip())
        for proxy in trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                errors.append(f"TRUSTED_PROXIES must hold IP addresses or CIDR ranges, not {proxy!r}")
        server = (get("ASGI_SERVER", "granian") or "granian").lower()
        if server not in {"uvicorn", "granian"}:
            errors.append("ASGI_SERVER must be uvicorn or granian")

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = get(name, str(default)) or str(default)
            if not raw.isdigit() or not low <= int(raw) <= high:
                errors.append(f"{name} must be a whole number from {low} to {high}")
                return default
            return int(raw)

        def switch(name: str) -> bool:
            raw = (get(name, "off") or "off").lower()
            if raw not in {"on", "off", "true", "false", "1", "0"}:
                errors.append(f"{name} must be on or off")
            return raw in {"on", "true", "1"}

        # The interactive API docs: on in development, off in production unless asked for (`public`).
        api_docs = (get("API_DOCS", "off" if app_env == "production" else "on") or "off").lower()
        if api_docs not in {"off", "on", "public"}:
            errors.append("API_DOCS must be off, on or public")
        web_concurrency = integer("WEB_CONCURRENCY", 2, 1, 64)
        port = integer("PORT", 8000, 1, 65535)

        database_url = url("DATABASE_URL", schemes=("postgres", "postgresql"))
        redis_url = url("REDIS_URL", schemes=("redis", "rediss", "unix"))

        auth0_domain = get("AUTH0_DOMAIN")
        oidc_issuer = url("OIDC_ISSUER")
        if auth0_domain and oidc_issuer:
            errors.append("set either AUTH0_DOMAIN or OIDC_ISSUER, not both")
        if auth0_domain:
            domain = auth0_domain.removeprefix("https://").rstrip("/")
            if "/" in domain or not domain:
                errors.append("AUTH0_DOMAIN must be a host name such as example.eu.auth0.com")
            issuer = f"https://{domain}/"
        else:
            issuer = oidc_issuer or ""
            if not issuer:
                errors.append("AUTH0_DOMAIN (or OIDC_ISSUER for another OpenID provider) is required")
        client_id = get("AUTH0_CLIENT_ID")
        client_secret = get("AUTH0_CLIENT_SECRET")
        if not client_id:
            errors.append("AUTH0_CLIENT_ID is required")
        if not client_secret:
            errors.append("AUTH0_CLIENT_SECRET is required")
        try:
            http_timeout = float(get("OIDC_HTTP_TIMEOUT", "10") or "10")
        except ValueError:
            errors.append("OIDC_HTTP_TIMEOUT must be a number of seconds")
            http_timeout = 10.0

        secret_key = get("STRIPE_SECRET_KEY") or ""
        if not secret_key:
            errors.append("STRIPE_SECRET_KEY is required (sk_test_… or sk_live_…)")
        elif not secret_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            errors.append("STRIPE_SECRET_KEY must start with sk_test_, sk_live_, rk_test_ or rk_live_")
        publishable_key = get("STRIPE_PUBLISHABLE_KEY") or ""
        if publishable_key and not publishable_key.startswith(("pk_test_", "pk_live_")):
            errors.append("STRIPE_PUBLISHABLE_KEY must start with pk_test_ or pk_live_")
        webhook_secrets = tuple(s.strip() for s in (get("STRIPE_WEBHOOK_SECRET") or "").split(",") if s.strip())
        if not webhook_secrets:
            errors.append("STRIPE_WEBHOOK_SECRET is required (whsec_…; several may be comma-separated)")
        elif not all(s.startswith("whsec_") for s in webhook_secrets):
            errors.append("STRIPE_WEBHOOK_SECRET must hold whsec_… secrets, comma-separated")
        api_base = url("STRIPE_API_BASE")
        live = "_live_" in secret_key
        stripe_timeout = number("STRIPE_TIMEOUT", 20.0, minimum=1)
        stripe_retries = int(number("STRIPE_MAX_RETRIES", 2, integer=True))
        stripe_rate = number("STRIPE_RATE_LIMIT", 80.0 if live else 20.0, minimum=1)
        pool_size = int(number("DATABASE_POOL_SIZE", 10, minimum=2, integer=True))
        worker = WorkerSettings(
            poll_seconds=number("WORKER_POLL_SECONDS", 1.0, minimum=0.05),
            concurrency=int(number("WORKER_CONCURRENCY", 4, minimum=1, integer=True)),
            lease_seconds=int(number("EVENT_LEASE_SECONDS", 120, minimum=5, integer=True)),
            retry_hours=number("EVENT_RETRY_HOURS", 72.0, minimum=0.01),
            stale_seconds=number("WORKER_STALE_SECONDS", 30.0, minimum=1),
            max_event_delay_seconds=number("EVENT_MAX_DELAY_SECONDS", 300.0, minimum=1),
            reconcile_minutes=number("EVENT_RECONCILE_MINUTES", 5.0),
        )

        grace_days = 7
        try:
            grace_days = int(get("ENTITLEMENT_GRACE_DAYS", "7") or "7")
            if grace_days < 0:
                raise ValueError
        except ValueError:
            errors.append("ENTITLEMENT_GRACE_DAYS must be a whole number of days (0 or more)")
        api_rate_limit = 600
        try:
            api_rate_limit = int(get("HOST_API_RATE_LIMIT", "600") or "600")
            if api_rate_limit < 1:
                raise ValueError
        except ValueError:
            errors.append("HOST_API_RATE_LIMIT must be a positive number of requests per minute")
        endpoints: list[HostWebhookTarget] = []
        for pair in (get("HOST_WEBHOOK_ENDPOINTS") or "").split(","):
            if not pair.strip():
                continue
            pieces = pair.split()
            if (
                len(pieces) != 2
                or urlsplit(pieces[0]).scheme not in ("http", "https")
                or not pieces[1].startswith("whsec_")
            ):
                errors.append("HOST_WEBHOOK_ENDPOINTS must hold `<http(s) URL> <whsec_…>` pairs, comma-separated")
                break
            endpoints.append(HostWebhookTarget(url=pieces[0], secret=pieces[1]))
        api_audience = get("API_AUDIENCE", f"{base_url}/api") or f"{base_url}/api"
        allowed_origins = []
        for origin in (get("API_ALLOWED_ORIGINS") or base_url).split(","):
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                errors.append("API_ALLOWED_ORIGINS must be comma-separated origins such as https://app.example.com")
                break
            allowed_origins.append(f"{parts.scheme}://{parts.netloc}".lower())

        def csv(name: str) -> tuple[str, ...]:
            return tuple(v.strip() for v in (get(name) or "").split(",") if v.strip())

        def color(name: str, default: str) -> str:
            value = (get(name, default) or default).lower()
            if not re.fullmatch(r"#[0-9a-f]{6}", value):
                errors.append(f"{name} must be a colour written #rrggbb")
                return default
            return value

        branding = BrandingSettings(
            product_name=get("BRAND_NAME", "Billing") or "Billing",
            primary_color=color("BRAND_PRIMARY_COLOR", BrandingSettings.primary_color),
            accent_color=color("BRAND_ACCENT_COLOR", BrandingSettings.accent_color),
            logo_url=url("BRAND_LOGO_URL"),
            support_url=url("SUPPORT_URL"),
            privacy_url=url("PRIVACY_URL"),
            terms_url=url("TERMS_URL"),
        )

        if errors:
            raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(errors))

        return cls(
            app=AppSettings(
                base_url=base_url,
                session_secret=session_secret or "",
                data_dir=Path(get("DATA_DIR") or PROJECT_ROOT / ".data").resolve(),
                redis_url=redis_url,
                log_level=log_level,
                default_locale=get("DEFAULT_LOCALE", "en_US") or "en_US",
                default_timezone=get("DEFAULT_TIMEZONE", "UTC") or "UTC",
                event_worker=event_worker == "in-process",
                portal_retention_coupon=get("PORTAL_RETENTION_COUPON"),
                env=app_env,
                trusted_proxies=trusted_proxies,
                web_concurrency=web_concurrency,
                server=server,
                host=get("HOST", "0.0.0.0") or "0.0.0.0",  # noqa: S104 (see AppSettings.host)
                port=port,
                api_docs=api_docs,
                metrics=switch("METRICS"),
                webhook_source_allowlist=switch("WEBHOOK_SOURCE_ALLOWLIST"),
            ),
            database=DatabaseSettings(url=database_url, pool_size=pool_size),
            oidc=OIDCSettings(
                issuer=issuer,
                client_id=client_id or "",
                client_secret=client_secret or "",
                is_auth0=bool(auth0_domain),
                scope=get("OIDC_SCOPE", "openid profile email") or "openid profile email",
                http_timeout=http_timeout,
                roles_claim=get("OIDC_ROLES_CLAIM", "roles") or "roles",
                admin_subjects=csv("ADMIN_SUBJECTS"),
                admin_emails=tuple(e.lower() for e in csv("ADMIN_EMAILS")),
            ),
            stripe=StripeSettings(
                secret_key=secret_key,
                publishable_key=publishable_key,
                webhook_secrets=webhook_secrets,
                api_base=api_base.rstrip("/") if api_base else None,
                timeout=stripe_timeout,
                max_retries=stripe_retries,
                rate_limit=stripe_rate,
            ),
            entitlements=EntitlementSettings(
                grace_days=grace_days, webhook_endpoints=tuple(endpoints), api_rate_limit=api_rate_limit
            ),
            worker=worker,
            api=ApiSettings(audience=api_audience, allowed_origins=tuple(allowed_origins)),
            branding=branding,
        )


# Values that only the local stand-ins use; a production deployment that still has them is misconfigured.
DEVELOPMENT_SECRETS = {"local-client-secret", "sk_test_emulator", "pk_test_emulator"}
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def production_problems(settings: Settings) -> list[str]:
    """Why `settings` are unsafe to serve real people with (empty when they are fine).

    Checked when `APP_ENV=production`: by `create_app()` and by `scripts/serve` before migrations.
    """
    problems: list[str] = []
    if urlsplit(settings.app.base_url).scheme != "https":
        problems.append("APP_BASE_URL must be https:// in production (cookies are only Secure over https)")
    if settings.stripe.api_base:
        problems.append("STRIPE_API_BASE is set: production talks to Stripe itself, not an emulator")
    if settings.stripe.secret_key in DEVELOPMENT_SECRETS or settings.oidc.client_secret in DEVELOPMENT_SECRETS:
        problems.append("STRIPE_SECRET_KEY or AUTH0_CLIENT_SECRET is a development default")
    secret = settings.app.session_secret
    if len(set(secret)) < 16:
        problems.append("SESSION_SECRET looks like a placeholder: use at least 32 random characters")
    issuer = urlsplit(settings.oidc.issuer)
    if issuer.scheme != "https" or issuer.hostname in LOOPBACK_HOSTS:
        problems.append("the OpenID issuer must be an https:// provider, not the local stand-in")
    if settings.app.api_docs == "on":
        problems.append("API_DOCS=on: the schema pages are public; set API_DOCS=public to mean it, or off")
    return problems
