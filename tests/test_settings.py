"""Settings are validated at start-up with errors that name the variable."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError

GOOD = {
    "SESSION_SECRET": "x" * 32,
    "OIDC_ISSUER": "http://localhost:9400",
    "AUTH0_CLIENT_ID": "client",
    "AUTH0_CLIENT_SECRET": "secret",
    "STRIPE_SECRET_KEY": "sk_test_123",
    "STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b",
}


def test_defaults_and_parsing() -> None:
    settings = Settings.from_env(GOOD)
    assert settings.app.base_url == "http://localhost:8000"
    assert settings.app.is_https is False
    assert settings.stripe.webhook_secrets == ("whsec_a", "whsec_b")
    assert settings.stripe.livemode is False
    assert settings.oidc.issuer == "http://localhost:9400"
    assert settings.database.url is None and settings.app.redis_url is None


def test_auth0_domain_gives_the_auth0_issuer() -> None:
    env = {k: v for k, v in GOOD.items() if k != "OIDC_ISSUER"} | {"AUTH0_DOMAIN": "acme.eu.auth0.com"}
    settings = Settings.from_env(env)
    assert settings.oidc.issuer == "https://acme.eu.auth0.com/"
    assert settings.oidc.is_auth0


def test_every_missing_variable_is_named() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({})
    message = str(error.value)
    for name in ("SESSION_SECRET", "AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "STRIPE_SECRET_KEY"):
        assert name in message
    assert "STRIPE_WEBHOOK_SECRET" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_BASE_URL", "localhost:8000"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("STRIPE_SECRET_KEY", "pk_test_x"),
        ("STRIPE_WEBHOOK_SECRET", "secret"),
        ("SESSION_SECRET", "short"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(GOOD | {name: value})


def test_https_base_url_marks_cookies_secure() -> None:
    assert Settings.from_env(GOOD | {"APP_BASE_URL": "https://billing.example.com/"}).app.is_https
    assert Settings.from_env(GOOD | {"APP_BASE_URL": "https://billing.example.com/"}).app.base_url == (
        "https://billing.example.com"
    )


def test_console_roles_and_branding_settings() -> None:
    env = GOOD | {
        "OIDC_ROLES_CLAIM": "https://billing.example.com/roles",
        "ADMIN_SUBJECTS": "auth0|1, auth0|2",
        "ADMIN_EMAILS": "Ops@Example.com",
        "BRAND_NAME": "Acme",
        "BRAND_PRIMARY_COLOR": "#0B5394",
        "TERMS_URL": "https://acme.example/terms",
    }
    settings = Settings.from_env(env)
    assert settings.oidc.roles_claim == "https://billing.example.com/roles"
    assert settings.oidc.admin_subjects == ("auth0|1", "auth0|2")
    assert settings.oidc.admin_emails == ("ops@example.com",)
    assert settings.branding.product_name == "Acme" and settings.branding.primary_color == "#0b5394"
    assert settings.branding.terms_url == "https://acme.example/terms"
    assert Settings.from_env(GOOD).oidc.roles_claim == "roles"
    with pytest.raises(SettingsError) as error:
        Settings.from_env(GOOD | {"BRAND_ACCENT_COLOR": "green", "PRIVACY_URL": "privacy"})
    assert "BRAND_ACCENT_COLOR must be a colour written #rrggbb" in str(error.value)
    assert "PRIVACY_URL must be a URL" in str(error.value)
