"""Pages rendered from a language's `LocalizedEnvironment` (fixed texts and links compiled in) read
exactly as pages rendered from the plain environment with the page's helpers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine

from app.settings import PROJECT_ROOT
from app.web import i18n
from app.web.templating import configure_engine, localized_environment

SOURCE = (
    '{{ _("Plan") }}|{% trans %}Payments are processed by Stripe. Sign-in by your identity provider.{% endtrans %}|'
    '{{ _("Renews on %(date)s", date="<b>1.</b>") }}|{{ _("Your plan") if flag else _("Account") }}|'
    '{{ url_for("account:show") }}|{{ url_for("static", file_path="css/app.css") }}|{{ "Lifetime" | t }}|'
    "{{ name | t }}|{{ _(name) }}|{% trans plan=name, n=3 %}{{ n }} of {{ plan }}: 100%% done{% endtrans %}|"
    '{% trans end="<i>x</i>" %}Until {{ end }} you keep:{% endtrans %}|{{ _("Renews on %(date)s", date=name) }}'
)


class FakeApp:
    """Counts route lookups: a folded `url_for` is reversed when compiling, not when rendering."""

    def __init__(self) -> None:
        self.reversed = 0

    def route_reverse(self, name: str, **parameters: Any) -> str:
        self.reversed += 1
        return f"/{name}/" + "/".join(f"{k}={v}" for k, v in sorted(parameters.items()))


def engine() -> JinjaTemplateEngine:
    made = JinjaTemplateEngine(directory=PROJECT_ROOT / "templates")
    configure_engine(made, auto_reload=False)
    return made


def test_localized_template_renders_what_the_plain_template_renders() -> None:
    env, app = engine().engine, FakeApp()
    for language in i18n.LANGUAGES:
        preferences = i18n.Preferences(language, i18n.timezone_named("UTC", "UTC"), language)
        request = SimpleNamespace(app=app, scope={"state": {i18n._PREFERENCES_KEY: preferences}})
        variables = {**i18n.page_callables(preferences), "request": request, "flag": True, "name": "<Monthly>"}
        plain = env.from_string(SOURCE).render(variables)
        localized = localized_environment(env, language, app)
        assert localized is localized_environment(env, language, app)  # made once per (language, app)
        folded = localized.from_string(SOURCE)
        reversed_before = app.reversed
        assert folded.render(variables) == plain
        assert app.reversed == reversed_before  # the links were compiled in
    german = localized_environment(env, "de", app).compile(SOURCE, raw=True)
    assert "'Tarif|'" in german and "Zahlungen werden" in german and "url_for" not in german
    with_values = localized_environment(env, "de", app).compile('{{ _("Renews on %(date)s", date=name) }}', raw=True)
    assert "context.call" not in with_values and "Verlängert sich am %(date)s" in with_values


def test_a_template_that_names_a_variable_like_a_helper_is_not_folded() -> None:
    env, app = engine().engine, FakeApp()
    source = '{% set _ = gettext %}{{ _("Plan") }}'
    code = localized_environment(env, "de", app).compile(source, raw=True)
    assert "'Plan'" in code and "Tarif" not in code
