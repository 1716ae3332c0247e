"""Template helpers registered on the Jinja engine (`template_callables` in `app.asgi`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, pass_context
from jinja2 import Template as JinjaTemplate
from jinja2.runtime import Context
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup

from app.web import i18n


def session_value(context: Mapping[str, Any], key: str) -> Any:
    """`request.session[key]` when the request went through the session middleware, else None.

    Error pages for unmatched URLs are rendered without the middleware stack, so templates must
    not touch `request.session` directly.
    """
    request = context.get("request")
    session = request.scope.get("session") if request is not None else None
    return session.get(key) if isinstance(session, dict) else None


def has_session(context: Mapping[str, Any]) -> bool:
    """True when the request went through the session middleware (flash messages need it)."""
    request = context.get("request")
    return request is not None and isinstance(request.scope.get("session"), dict)


@pass_context
def entitled(context: Context, user: Any, feature: str) -> bool:
    """Jinja test `{% if user is entitled("custom_domain") %}`: true when the page's `entitlements`
    (the signed-in person's features in force, loaded by the handler) include `feature`."""
    features = context.get("entitlements")
    if user is None or features is None:
        return False
    return feature in features


def brand(context: Mapping[str, Any]) -> Any:
    """The brand of this page (`request.state.branding`, set before each request), else the settings' defaults."""
    from app.admin.branding_service import defaults

    request = context.get("request")
    if request is None:
        return None
    view = request.scope.get("state", {}).get("branding")
    return view or defaults(request.app.state.settings.branding)


def has_role(context: Mapping[str, Any], *roles: str) -> bool:
    """True when the person's roles (kept in the session at sign-in, for the nav only) include one of `roles`."""
    held = session_value(context, "roles") or []
    return any(role in held for role in roles)


@functools.lru_cache(maxsize=1024)
def _route_path(app: Any, route_name: str, parameters: tuple[tuple[str, Any], ...]) -> str:
    return str(app.route_reverse(route_name, **dict(parameters)))


def url_for(context: Mapping[str, Any], route_name: str, /, **path_parameters: Any) -> str:
    """Litestar's `url_for`, remembered per app: a page links the same few routes on every request,
    and reversing a route each time is a measurable part of rendering one."""
    app = context["request"].app
    try:
        return _route_path(app, route_name, tuple(sorted(path_parameters.items())))
    except TypeError:  # an unhashable parameter
        return str(app.route_reverse(route_name, **path_parameters))


class PageTemplate(JinjaTemplate):
    """A template that, rendered for a request (a `request` in its variables, as Litestar's
    `Template` response passes), gets the helpers bound to that person's preferences
    (`i18n.page_callables`: `_`, `ngettext`, `money`, `date`, ...) as variables, resolved once per
    render instead of once per call. Included templates share the page's context and so the same
    helpers; anything rendered without a request keeps the global helpers."""

    def new_context(
        self, vars: dict[str, Any] | None = None, shared: bool = False, locals: Mapping[str, Any] | None = None
    ) -> Context:
        if vars and not shared and "request" in vars:
            request = vars["request"]
            if hasattr(request, "scope") and hasattr(request, "app"):
                token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
                # The page's own variables still win over the helpers, as they do over globals.
                vars = {
                    **i18n.page_callables(i18n.request_preferences(request)),
                    "csrf_token": lambda: token,
                    **vars,
                }
        return super().new_context(vars, shared, locals)


def icon_callable(env: Environment) -> Any:
    """The global `icon(name)`: the `icon` macro of `partials/_icons.html` (the one place the SVGs are
    written), its output remembered per name, so that a page's buttons need neither an import of that
    template on each render nor a macro call each. Nothing is remembered while templates reload
    (development), so an edited icon shows at once."""
    made: dict[str, Markup] = {}

    def icon(name: str) -> Markup:
        done = made.get(name)
        if done is None:
            macro = getattr(env.get_template("partials/_icons.html").module, "icon")  # noqa: B009
            done = Markup(macro(name))  # noqa: S704 (a macro's output)
            if not env.auto_reload and len(made) < 64:
                made[name] = done
        return done

    return icon


def configure_engine(engine: JinjaTemplateEngine, auto_reload: bool = True) -> None:
    """Register this module's callables on the engine, and Jinja's i18n extension with newstyle
    gettext bound to the request's language (`{{ _("Plan") }}`, `{% trans %}`, `ngettext`).
    `auto_reload=False` (production) stops Jinja from checking every template file's modification
    time each time a page includes it."""
    env = engine.engine
    env.auto_reload = auto_reload
    env.template_class = PageTemplate
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.template_gettext, i18n.template_ngettext, newstyle=True
    )
    env.filters["t"] = i18n.translate_filter
    env.globals["icon"] = icon_callable(env)
    engine.register_template_callable("url_for", url_for)
    engine.register_template_callable("page_language", i18n.page_language)
    engine.register_template_callable("languages", i18n.languages)
    engine.register_template_callable("session_value", session_value)
    engine.register_template_callable("has_session", has_session)
    engine.register_template_callable("brand", brand)
    engine.register_template_callable("has_role", has_role)
    engine.register_template_callable("money", i18n.money)
    engine.register_template_callable("date", i18n.date)
    engine.register_template_callable("datetime", i18n.datetime_)
    engine.register_template_callable("request_locale", i18n.request_locale)
    engine.engine.tests["entitled"] = entitled
