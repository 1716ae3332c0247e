"""Pages in the person's language: words (gettext catalogs), money and dates (Babel).

The language is, in order: the person's choice (the footer switcher; kept on the `user` row and
in the session for signed-in people, in the `lang` cookie for everyone), then the browser's
`Accept-Language`, then `DEFAULT_LOCALE`. Money and dates use the same language, with the region
of the browser's tag when it names that language (`de-CH` → `de_CH`). The time zone comes from the
`tz` cookie that `static/js/app.js` sets from the browser's own setting (falling back to
`DEFAULT_TIMEZONE`), so pages without JavaScript still show correct, labelled times.

Catalogs live in `app/translations/<lang>/LC_MESSAGES/messages.po` and are compiled to `.mo` by
`make translations` (part of `make run` and `make test`); README "Languages".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from babel.support import Translations
from jinja2 import pass_context, pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

# The page languages, by their code, each named in its own language (the footer switcher's labels).
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
LANGUAGE_COOKIE = "lang"
"""Cookie holding the language anyone chose with the footer switcher (`de`)."""
SESSION_LANGUAGE_KEY = "locale"
"""Session key holding a signed-in person's chosen language (copied from `user.locale`)."""
USER_LANGUAGE_STATE_KEY = "user_locale"
"""Scope state key where `provide_current_user` leaves the loaded user row's `locale`."""


def N_(message: str) -> str:
    """Mark `message` for extraction without translating it (module constants, translated where shown)."""
    return message


class Message(str):
    """A message with placeholders, made where no request is at hand (a form's validation), and
    translated where it is shown: `Message(N_("%(label)s has a contrast of %(ratio)s:1."), label=…)`.

    As a `str` it is the English text with its placeholders filled, so code and logs that treat it as
    text keep working; `msgid` and `params` let `Preferences.gettext` and the `t` filter translate it.
    """

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, /, **params: Any) -> Message:
        made = super().__new__(cls, msgid % params if params else msgid)
        made.msgid = msgid
        made.params = params
        return made


class CatalogsMissing(RuntimeError):
    """The compiled catalogs (`.mo`) are missing: run `make translations`."""


@lru_cache(maxsize=16)
def translations(language: str) -> Translations:
    """The compiled catalog of `language` (one of `LANGUAGES`), loaded once per process.

    Raises:
        CatalogsMissing: `app/translations/<language>/LC_MESSAGES/messages.mo` does not exist.
    """
    if language not in LANGUAGES:
        language = "en"
    mo = TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.mo"
    if not mo.is_file():
        raise CatalogsMissing(f"{mo} is missing: run `make translations` (pybabel compile -d app/translations)")
    with mo.open("rb") as fp:
        return Translations(fp, domain="messages")


def check_catalogs() -> None:
    """Load every language's catalog; raises `CatalogsMissing` naming the first one not compiled."""
    for language in LANGUAGES:
        translations(language)


# Stripe amounts are in the currency's smallest unit; these currencies have none below the unit
# (https://docs.stripe.com/currencies#zero-decimal) or three decimals (#three-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in Stripe amounts of `currency` (0, 2 or 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def amount_decimal(amount_cents: int, currency: str) -> Decimal:
    """A Stripe amount in minor units as a Decimal in major units: (1999, "usd") → 19.99."""
    return Decimal(amount_cents).scaleb(-currency_exponent(currency))


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The Babel `Locale` of a tag such as `de_DE`, parsed once per process (parsing loads CLDR data)."""
    return Locale.parse(tag)


@lru_cache(maxsize=4096)  # Babel's formatting is the costly part of a page's money; amounts repeat
def format_money(amount_cents: int, currency: str, locale: str = "en_US") -> str:
    """(1999, "usd", "en_US") → "$19.99"; (1999, "eur", "de_DE") → "19,99 €"; (500, "jpy") → "¥500"."""
    return format_currency(amount_decimal(amount_cents, currency), currency.upper(), locale=babel_locale(locale))


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an `Accept-Language` header, most preferred first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate_locale(header: str | None, default: str) -> str:
    """The first locale of `header` that Babel knows, as `ll_CC` or `ll`; else `default`."""
    for tag in parse_accept_language(header):
        try:
            return str(Locale.parse(tag, sep="-"))
        except (ValueError, UnknownLocaleError):
            continue
    return default


def timezone_named(name: str | None, default: str) -> ZoneInfo:
    """`ZoneInfo(name)` when it is a known IANA zone, else `ZoneInfo(default)` (never raises for `name`)."""
    if name and len(name) <= 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return ZoneInfo(default)


@dataclass(frozen=True)
class Preferences:
    """How to speak to one person: the page language (`de`), the Babel locale of money and dates
    (`de_CH`, always of that language) and an IANA zone."""

    locale: str
    timezone: ZoneInfo
    language: str = "en"

    @property
    def timezone_name(self) -> str:
        return self.timezone.key

    @property
    def translations(self) -> Translations:
        return translations(self.language)

    def gettext(self, message: str, /, **variables: Any) -> str:
        """`message` in the person's language, `%(name)s` placeholders filled from `variables` (and,
        for a `Message`, from its own params)."""
        if isinstance(message, Message):
            variables = {**message.params, **variables}
            message = message.msgid
        text = self.translations.ugettext(message)
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, n: int, /, **variables: Any) -> str:
        """The singular or plural form for `n` in the person's language; `%(num)s` is `n`."""
        return self.translations.ungettext(singular, plural, n) % {"num": n, **variables}


def language_of(tag: str | None) -> str | None:
    """The supported language of a tag (`de-CH`, `de_CH`, `DE`) or None."""
    if not tag or len(tag) > 35:
        return None
    code = tag.replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


@lru_cache(maxsize=1024)  # a pure function of its three strings; parsing the tags with Babel is the costly part
def resolve_language(choice: str | None, accept_language: str | None, default_locale: str) -> tuple[str, str]:
    """(page language, formatting locale) for a person's `choice`, the `Accept-Language` header and
    `DEFAULT_LOCALE`, in that order; see the module docstring. Never raises.

    >>> resolve_language("de", "de-CH,en;q=0.5", "en_US")
    ('de', 'de_CH')
    >>> resolve_language(None, "fr-FR", "en_US")
    ('fr', 'fr_FR')
    """
    tags = parse_accept_language(accept_language if accept_language and len(accept_language) <= 512 else None)
    language = language_of(choice)
    if language is None:
        language = next((lang for lang in map(language_of, tags) if lang), None)
    if language is None:
        language = language_of(default_locale) or "en"
    for tag in [*tags, default_locale]:
        if language_of(tag) != language:
            continue
        try:
            return language, str(Locale.parse(tag.replace("_", "-"), sep="-"))
        except (ValueError, UnknownLocaleError):
            continue
    return language, language


_PREFERENCES_KEY = "billing_preferences"


def chosen_language(request: Any) -> str | None:
    """The language the person chose, if any: the loaded `user` row's, else the session's, else the
    `lang` cookie's. Reads nothing from the database (the user row is the one the page loaded)."""
    state = request.scope.get("state") or {}
    session = request.scope.get("session")
    for value in (
        state.get(USER_LANGUAGE_STATE_KEY),
        session.get(SESSION_LANGUAGE_KEY) if isinstance(session, dict) else None,
        request.cookies.get(LANGUAGE_COOKIE),
    ):
        if isinstance(value, str) and len(value) <= 8 and language_of(value):
            return language_of(value)
    return None


def request_preferences(request: Any) -> Preferences:
    """The one place that reads a person's language (their choice, `Accept-Language`), locale and
    time zone (`tz` cookie); any unknown, malformed or oversized value falls back to
    `DEFAULT_LOCALE` / `DEFAULT_TIMEZONE`.

    Resolved once per request and kept in the ASGI scope, so every template helper of a page
    (`money`, `date`, `gettext`, ... called once per row) reuses it instead of negotiating again.
    """
    state = request.scope.setdefault("state", {})
    cached = state.get(_PREFERENCES_KEY)
    if cached is not None:
        return cached
    app_settings = request.app.state.settings.app
    language, locale = resolve_language(
        chosen_language(request), request.headers.get("accept-language"), app_settings.default_locale
    )
    preferences = Preferences(
        locale, timezone_named(request.cookies.get("tz"), app_settings.default_timezone), language
    )
    state[_PREFERENCES_KEY] = preferences
    return preferences


def remember_user_language(request: Any, locale: str | None) -> None:
    """Called with the signed-in person's loaded `user.locale`: it wins over the session and cookie."""
    state = request.scope.setdefault("state", {})
    if locale and state.get(USER_LANGUAGE_STATE_KEY) != locale:
        state[USER_LANGUAGE_STATE_KEY] = locale
        state.pop(_PREFERENCES_KEY, None)


# Stripe's Checkout and Billing Portal locales
# (https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-locale).
STRIPE_LOCALES = frozenset(
    "bg cs da de el en en-GB es es-419 et fi fil fr fr-CA hr hu id it ja ko lt lv ms mt nb nl pl pt pt-BR "
    "ro ru sk sl sv th tr vi zh zh-HK zh-TW".split()
)
_SPAIN_AND_NOT_LATIN_AMERICA = frozenset({"ES", "GQ", "PH", "US"})


def stripe_locale(locale: str) -> str:
    """The Stripe Checkout / Billing Portal `locale` for a Babel locale: `de_CH` → `de`,
    `en_GB` → `en-GB`, `fr_CA` → `fr-CA`, `es_MX` → `es-419`; `auto` for what Stripe does not speak."""
    language, _, territory = locale.replace("-", "_").partition("_")
    territory = territory.split("_")[-1] if territory else ""
    if language == "es" and territory and territory not in _SPAIN_AND_NOT_LATIN_AMERICA and territory.isalpha():
        return "es-419"
    for candidate in (f"{language}-{territory}", language):
        if candidate in STRIPE_LOCALES:
            return candidate
    return "auto"


def request_stripe_locale(request: Any) -> str:
    """`stripe_locale` of the request's preferences: what Checkout and the portal should speak."""
    return stripe_locale(request_preferences(request).locale)


def _request_settings(context: Mapping[str, Any]) -> tuple[str, ZoneInfo]:
    request = context.get("request")
    if request is None:
        return "en_US", ZoneInfo("UTC")
    preferences = request_preferences(request)
    return preferences.locale, preferences.timezone


def request_locale(context: Mapping[str, Any]) -> str:
    """Template callable: the negotiated locale of the current request."""
    return _request_settings(context)[0]


def _context_preferences(context: Mapping[str, Any]) -> Preferences | None:
    request = context.get("request")
    return request_preferences(request) if request is not None else None


def page_language(context: Mapping[str, Any]) -> str:
    """Template callable: the page's language as a BCP 47 tag for `<html lang>` (`de`, `de-CH`)."""
    preferences = _context_preferences(context)
    if preferences is None:
        return "en"
    return preferences.locale.replace("_", "-")


def languages(context: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """Template callable: `(code, name, is_current)` for the footer's language switcher."""
    preferences = _context_preferences(context)
    current = preferences.language if preferences else "en"
    return [(code, name, code == current) for code, name in LANGUAGES.items()]


@pass_context
def template_gettext(context: Any, message: str) -> str:
    """Jinja's `gettext`/`_` (wrapped by the i18n extension's newstyle gettext) in the page's language."""
    preferences = _context_preferences(context)
    return (preferences.translations if preferences else translations("en")).ugettext(message)


@pass_context
def translate_filter(context: Any, value: Any) -> Any:
    """Jinja filter `t`: a string from data (a feature name of `plans.toml`) in the page's language,
    as written when the catalog does not have it. `{{ features | map('t') | join(', ') }}`."""
    if not isinstance(value, str) or not value:
        return value
    if isinstance(value, Message):
        preferences = _context_preferences(context)
        return (preferences or Preferences("en", ZoneInfo("UTC"))).gettext(value)
    return template_gettext(context, value)


@pass_context
def template_ngettext(context: Any, singular: str, plural: str, n: int) -> str:
    """Jinja's `ngettext` and `{% trans count=n %}…{% pluralize %}…{% endtrans %}` in the page's language."""
    preferences = _context_preferences(context)
    return (preferences.translations if preferences else translations("en")).ungettext(singular, plural, n)


def money(context: Mapping[str, Any], amount_cents: int | None, currency: str | None) -> str:
    """Template callable: `{{ money(p.amount_cents, p.currency) }}` in the person's locale."""
    if amount_cents is None or not currency:
        return "—"
    return format_money(amount_cents, currency, _request_settings(context)[0])


def date(context: Mapping[str, Any], value: datetime | None, format: str = "medium") -> str:
    """Template callable: a date in the person's locale and time zone (`23 Nov 2026`)."""
    if value is None:
        return "—"
    locale, tz = _request_settings(context)
    return _format_date(value.astimezone(tz).date(), format, locale)


def datetime_(context: Mapping[str, Any], value: datetime | None, format: str = "medium") -> str:
    """Template callable: a date and time in the person's locale and time zone, with the zone."""
    if value is None:
        return "—"
    locale, tz = _request_settings(context)
    return _format_datetime(value, format, tz, locale)


# Babel's formatting is most of what a page spends on its dates; the same dates come back on every visit.
@lru_cache(maxsize=4096)
def _format_date(day: Date, format: str, locale: str) -> str:
    return format_date(day, format=format, locale=babel_locale(locale))


@lru_cache(maxsize=4096)
def _format_datetime(value: datetime, format: str, tz: ZoneInfo, locale: str) -> str:
    shown = format_datetime(value, format=format, tzinfo=tz, locale=babel_locale(locale))
    return f"{shown} {value.astimezone(tz).tzname()}"


# --------------------------------------------------------------------------- bound once per page

_GETTEXT_CACHE_LIMIT = 4096
"""Translated messages remembered per language (a page's msgids are a few hundred, all from templates)."""


@lru_cache(maxsize=16)
def _template_gettext(language: str) -> tuple[Callable[..., str], Callable[..., str]]:
    """(gettext, ngettext) for templates in `language`, behaving exactly as Jinja's i18n extension's
    newstyle callables (`_make_new_gettext`): translated, made `Markup` under autoescape, and always
    used as a `%` format string (so `%%` is a literal `%`). Made once per process and language; the
    finished text of a message without placeholders is remembered, since a page asks for the same
    few hundred on every render."""
    catalog = translations(language)
    ugettext, ungettext = catalog.ugettext, catalog.ungettext
    finished: dict[str, Markup] = {}  # messages without placeholders, formatted
    translated: dict[str, Markup] = {}  # messages with placeholders, before formatting
    # Catalog text is trusted markup, as Jinja's extension treats it; placeholders are escaped by `%`.

    @pass_eval_context
    def gettext(eval_ctx: EvalContext, string: str, /, **variables: Any) -> str:
        if not eval_ctx.autoescape:
            return ugettext(string) % variables
        if variables:
            markup = translated.get(string)
            if markup is None:
                markup = Markup(ugettext(string))  # noqa: S704
                if len(translated) < _GETTEXT_CACHE_LIMIT:
                    translated[string] = markup
            return markup % variables
        done = finished.get(string)
        if done is None:
            done = Markup(ugettext(string)) % variables  # noqa: S704
            if len(finished) < _GETTEXT_CACHE_LIMIT:
                finished[string] = done
        return done

    @pass_eval_context
    def ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any) -> str:
        variables.setdefault("num", num)
        text = ungettext(singular, plural, num)
        return (Markup(text) if eval_ctx.autoescape else text) % variables  # noqa: S704

    return gettext, ngettext


def page_gettext(language: str) -> Callable[..., str]:
    """The `_`/`gettext` that `page_callables` gives templates in `language` (takes the eval context first)."""
    return _template_gettext(language)[0]


def page_message(language: str) -> Callable[[str], Markup]:
    """The catalog text of a message in `language`, as `Markup`, before its placeholders are filled:
    what the page's `_` (under autoescape) formats with `%` and the placeholders' values."""
    ugettext = translations(language).ugettext
    return lambda message: Markup(ugettext(message))  # noqa: S704 (catalog text is trusted markup)


@lru_cache(maxsize=16)
def page_translate_filter(language: str) -> Callable[[Any], Any]:
    """The `t` filter (`translate_filter`) of pages in `language`: what it gives for a request whose
    page language is `language`, without looking the request up (a plain function, so Jinja works
    it out at compile time for a literal)."""
    catalog = translations(language)
    preferences = Preferences(language, ZoneInfo("UTC"), language)  # only its language is used

    def translate(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        if isinstance(value, Message):
            return preferences.gettext(value)
        return catalog.ugettext(value)

    return translate


@lru_cache(maxsize=256)
def page_callables(preferences: Preferences) -> dict[str, Any]:
    """The template helpers that depend only on a person's preferences, bound to them: `_`/`gettext`,
    `ngettext` (and so `{% trans %}`), `money`, `date`, `datetime`, `request_locale`, `page_language`
    and `languages`. Installed into each page's context once (`app.web.templating.PageTemplate`), so
    that a call is one function call instead of a lookup of the request's preferences; each gives
    exactly what the global helper of the same name gives for that request. Made once per process
    and (language, locale, time zone)."""
    gettext, ngettext = _template_gettext(preferences.language)
    locale, tz = preferences.locale, preferences.timezone
    switcher = [(code, name, code == preferences.language) for code, name in LANGUAGES.items()]

    def bound_money(amount_cents: int | None, currency: str | None) -> str:
        if amount_cents is None or not currency:
            return "—"
        return format_money(amount_cents, currency, locale)

    def bound_date(value: datetime | None, format: str = "medium") -> str:
        if value is None:
            return "—"
        return _format_date(value.astimezone(tz).date(), format, locale)

    def bound_datetime(value: datetime | None, format: str = "medium") -> str:
        if value is None:
            return "—"
        return _format_datetime(value, format, tz, locale)

    return {
        "gettext": gettext,
        "_": gettext,
        "ngettext": ngettext,
        "money": bound_money,
        "date": bound_date,
        "datetime": bound_datetime,
        "request_locale": lambda: locale,
        "page_language": lambda: locale.replace("_", "-"),
        "languages": lambda: list(switcher),
    }
