"""Pages in the person's language: the catalogs match the tree, the language order, the footer
switcher without JavaScript, `<html lang>`, and the `locale` given to Stripe Checkout and the portal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.auth.tables import User
from app.web.i18n import LANGUAGES, TRANSLATIONS_DIR, resolve_language, stripe_locale
from e2e.stripe_emulator.hosted import tr, use_locale
from tests.support.billing import buy, checkout_url, signed_in_user

ROOT = Path(__file__).resolve().parent.parent


def extracted_msgids() -> set[str]:
    """Every marked string of the tree, extracted in-process with the project's `babel.cfg`."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog_problems(extracted: set[str]) -> list[str]:
    problems = []
    for language in LANGUAGES:
        with (TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
            catalog = read_po(fp, locale=language)
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
        problems += [f"{language}: missing {msgid!r}" for msgid in sorted(extracted - ids)]
        problems += [f"{language}: stale {msgid!r}" for msgid in sorted(ids - extracted)]
        problems += [f"{language}: obsolete {m.id!r}" for m in catalog.obsolete.values()]
        if language == "en":
            continue
        for m in catalog:
            if not m.id:
                continue
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            if m.fuzzy or not all(strings):
                problems.append(f"{language}: untranslated or fuzzy {m.id!r}")
            elif isinstance(m.string, tuple) and len(m.string) != catalog.num_plurals:
                problems.append(f"{language}: {len(m.string)} plural forms for {m.id!r}")
    return problems


def test_every_catalog_has_exactly_the_strings_of_the_tree() -> None:
    extracted = extracted_msgids()
    assert "Manage Subscription" in extracted and "Unlimited projects" in extracted  # templates and plans.toml
    assert catalog_problems(extracted) == []


def test_a_new_string_is_reported_missing() -> None:
    problems = catalog_problems(extracted_msgids() | {"A string nobody translated yet"})
    assert "de: missing 'A string nobody translated yet'" in problems


def test_language_order() -> None:
    assert resolve_language(None, None, "en_US") == ("en", "en_US")
    assert resolve_language(None, "it-IT,fr-CH;q=0.8", "en_US") == ("fr", "fr_CH")
    assert resolve_language("de", "de-CH,en;q=0.5", "en_US") == ("de", "de_CH")  # the browser's region is kept
    assert resolve_language("de", "en-US", "en_US") == ("de", "de")
    assert resolve_language("xx", "es-MX", "en_US") == ("es", "es_MX")  # an unknown choice is ignored
    assert resolve_language(None, "ja-JP", "de_AT") == ("de", "de_AT")
    assert stripe_locale("de_CH") == "de" and stripe_locale("en_GB") == "en-GB" and stripe_locale("es_MX") == "es-419"
    assert stripe_locale("fr_CA") == "fr-CA" and stripe_locale("gsw") == "auto" and stripe_locale("pt_BR") == "pt-BR"


def test_emulator_pages_follow_the_session_locale_then_the_browser() -> None:
    use_locale("fr-CA", "de-DE")
    assert tr("Card number") == "Numéro de carte"
    use_locale("auto", "ja-JP, es-MX;q=0.8")
    assert tr("Card number") == "Número de tarjeta"
    use_locale(None, None)
    assert tr("Card number") == "Card number"


def html_lang(page: httpx.Response) -> str:
    match = re.search(r'<html lang="([^"]+)"', page.text)
    assert match, page.text[:200]
    return match.group(1)


async def switch(client: httpx.AsyncClient, language: str, next_path: str) -> httpx.Response:
    page = await client.get(next_path)
    csrf = client.cookies.get("billing_csrf") or ""
    assert f'name="language" value="{language}"' in page.text
    return await client.post("/language", data={"language": language, "next": next_path, "_csrf_token": csrf})


async def test_anonymous_visitor_follows_the_browser_then_the_switcher(billing_client: httpx.AsyncClient) -> None:
    english = await billing_client.get("/")
    assert html_lang(english) == "en-US" and "Sign in" in english.text
    french = await billing_client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert html_lang(french) == "fr-FR" and "Se connecter" in french.text and "Sign in" not in french.text

    response = await switch(billing_client, "de", "/plans?interval=year")
    assert response.status_code == 303 and response.headers["location"] == "/plans?interval=year"
    german = await billing_client.get("/plans?interval=year", headers={"Accept-Language": "fr-FR"})
    assert html_lang(german) == "de" and "Wählen Sie Ihren Tarif" in german.text and "/ Jahr" in german.text
    assert 'data-testid="price-pro">190,00\xa0$' in german.text  # German formats too
    assert 'aria-current="true">Deutsch' in german.text

    missing = await billing_client.get("/no-such-page")
    assert missing.status_code == 404 and "Seite nicht gefunden" in missing.text

    refused = await billing_client.post(
        "/language", data={"language": "xx", "_csrf_token": billing_client.cookies.get("billing_csrf") or ""}
    )
    assert refused.status_code == 400
    unsafe = await billing_client.post(
        "/language",
        data={"language": "es", "next": "//evil.example/", "_csrf_token": billing_client.cookies.get("billing_csrf")},
    )
    assert unsafe.status_code == 303 and unsafe.headers["location"] == "/"
    no_csrf = await billing_client.post("/language", data={"language": "fr"})
    assert no_csrf.status_code == 403


async def test_a_later_choice_reaches_the_stripe_customer_and_a_dead_stripe_does_not_block_it(
    billing_client: httpx.AsyncClient, oidc_provider: Any, gateway: Any, emulator_control: httpx.Client
) -> None:
    user = await signed_in_user(billing_client, oidc_provider, "spaeter")
    await switch(billing_client, "de", "/account")
    url = await checkout_url(billing_client, "pro_monthly")
    session = await gateway.client.v1.checkout.sessions.retrieve_async(urlsplit(url).path.rsplit("/", 1)[-1])
    customer_id = session["customer"]
    assert (await gateway.client.v1.customers.retrieve_async(customer_id))["preferred_locales"] == ["de"]

    response = await switch(billing_client, "fr", "/account")
    assert response.status_code == 303
    customer = await gateway.client.v1.customers.retrieve_async(customer_id)
    assert customer["preferred_locales"] == ["fr"], "Stripe's emails and invoices follow the new choice"

    async with httpx.AsyncClient(base_url=str(emulator_control.base_url)) as control:
        (await control.post("/_emulator/settings", json={"api_outage": True})).raise_for_status()
        try:
            while_down = await switch(billing_client, "es", "/account")
        finally:
            (await control.post("/_emulator/settings", json={"api_outage": False})).raise_for_status()
    assert while_down.status_code == 303 and while_down.headers["location"] == "/account"
    stored = await User.objects().get(User.id == user.id)
    assert stored is not None and stored.locale == "es", "the page language changes even when Stripe is down"
    assert (await gateway.client.v1.customers.retrieve_async(customer_id))["preferred_locales"] == ["fr"]


async def test_signed_in_choice_is_kept_on_the_user_and_reaches_stripe(
    billing_client: httpx.AsyncClient, oidc_provider: Any, gateway: Any
) -> None:
    user = await signed_in_user(billing_client, oidc_provider, "sprachwahl")
    response = await switch(billing_client, "de", "/account")
    assert response.status_code == 303 and response.headers["location"] == "/account"
    stored = await User.objects().get(User.id == user.id)
    assert stored is not None and stored.locale == "de"

    billing_client.cookies.delete("lang")  # the user row decides, not the cookie
    account = await billing_client.get("/account", headers={"Accept-Language": "de-CH,en;q=0.5"})
    assert html_lang(account) == "de-CH" and "Ihr Tarif" in account.text and "Your plan" not in account.text

    url = await checkout_url(billing_client, "pro_monthly")
    cs_id = urlsplit(url).path.rsplit("/", 1)[-1]
    session = await gateway.client.v1.checkout.sessions.retrieve_async(cs_id)
    assert session["locale"] == "de"
    customer = await gateway.client.v1.customers.retrieve_async(session["customer"])
    assert customer["preferred_locales"] == ["de"], "Stripe's emails and invoices speak German too"
    async with httpx.AsyncClient() as browser:  # Stripe's page follows the session's locale, not the browser
        checkout = await browser.get(url, headers={"Accept-Language": "en-US"})
    assert '<html lang="de">' in checkout.text and "Kartennummer" in checkout.text
    assert "Card number" not in checkout.text
    assert "19,00\xa0$" in checkout.text and "Pro abonnieren" in checkout.text

    await buy(billing_client, "pro_monthly")
    opened = await billing_client.post(
        "/portal/sessions", data={"workflow": "overview", "_csrf_token": billing_client.cookies.get("billing_csrf")}
    )
    assert opened.status_code == 303, opened.text
    created = [e async for e in gateway.events(type="billing_portal.session.created")]
    assert created[0]["data"]["object"]["locale"] == "de"
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        portal = await browser.get(opened.headers["location"])
    assert "Aktuelles Abonnement" in portal.text and "Rechnungsverlauf" in portal.text
    assert "Current subscription" not in portal.text

    await User.update({User.locale: "fr"}).where(User.id == user.id)  # chosen on another device
    french = await billing_client.get("/account", headers={"Accept-Language": "de-CH"})
    assert html_lang(french) == "fr" and "Votre formule" in french.text
