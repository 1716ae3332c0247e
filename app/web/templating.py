"""Template helpers registered on the Jinja engine (`template_callables` in `app.asgi`)."""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, nodes, pass_context, runtime
from jinja2 import Template as JinjaTemplate
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.visitor import NodeTransformer
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup, _escape_inner

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
    request = context.get("request")
    if request is None:
        return None
    view = request.scope.get("state", {}).get("branding")
    if view:
        return view
    from app.admin.branding_service import defaults  # only here: a page almost always has its brand

    return defaults(request.app.state.settings.branding)


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


_FOLDED_CALLS = frozenset({"_", "gettext", "url_for"})
_PLAIN_CALLABLES = frozenset(
    {"money", "date", "datetime", "csrf_token", "icon", "page_language", "languages", "request_locale"}
)
"""Helpers that a page's context binds to plain functions (`i18n.page_callables`, `csrf_token`, the
`icon` global): none takes Jinja's context, so a template may call them directly."""


_DIRECT = "billing_direct_call"
"""Marks a `nodes.Call` (Jinja allows no node types of one's own) to be compiled as a plain Python
call instead of through `Context.call`, which first checks whether the callee wants Jinja's context
(`pass_context` & co.) and costs about 0.7 µs a call: for a helper of `_PLAIN_CALLABLES` or a method
of a value (`path.startswith("/plans")`, `p.link("receipt_url")`), neither of which takes it. The
result is the same."""


def escape_text(value: Any) -> str:
    """`markupsafe.escape(value)` as a plain `str`: what a template outputs is joined into one string
    at once, so wrapping each escaped value in `Markup` first (a Python-level constructor, once per
    `{{ … }}`) changes nothing but the time it takes. `_escape_inner` is the function markupsafe's
    own `escape` uses (its C speedup), so the text is escaped exactly as before."""
    if type(value) is str:
        return _escape_inner(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return _escape_inner(str(value))


_JOINED = "_billing_joined"


class _PageCodeGenerator(CodeGenerator):
    """Jinja's code generator, writing a call marked `_DIRECT` as `(callee)(*(), args…)`, each
    autoescaped output with `escape_text`, each run of output as one joined string (`visit_Output`),
    and `.name` with the builtin `getattr` first (`visit_Getattr`). Async environments keep Jinja's
    code (none is used here). `tests/test_page_queries.py` renders every page with this and with
    Jinja's own generator and compares the HTML."""

    _closing_one = False

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("environment.escape_text(")
        if finalize.src is not None:
            self.write(finalize.src)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        if frame.buffer is not None or self.environment.is_async:
            super().visit_Output(node, frame)
            return
        # Jinja yields each piece of a run of text and `{{ … }}` on its own; written as for a buffer
        # (`NAME.extend((a, b, …))`), with `writeline` turning that into one `yield concat((a, b, …))`.
        frame.buffer = _JOINED
        try:
            super().visit_Output(node, frame)
        finally:
            frame.buffer = None

    def writeline(self, x: str, node: nodes.Node | None = None, extra: int = 0) -> None:
        if x.startswith(_JOINED):
            self._closing_one = x == f"{_JOINED}.append("  # its `)` closes `concat((item,)`
            x = "yield environment.concat(("
        elif x == ")" and self._closing_one:
            self._closing_one, x = False, "))"
        elif x.startswith("yield from ") and not self.environment.is_async:
            # A block, an include without context or the parent template: its output joined where it
            # is made, and handed up as one string, instead of each piece climbing every level.
            x = f"yield environment.concat({x.removeprefix('yield from ')})"
        super().writeline(x, node, extra)

    def visit_Include(self, node: nodes.Include, frame: Frame) -> None:
        if self.environment.is_async:
            super().visit_Include(node, frame)
            return
        # Jinja hands an include's output up piece by piece (`for event in gen: yield event`).
        named = isinstance(node.template, nodes.Const) and isinstance(node.template.value, str)
        if not named or not node.with_context or node.ignore_missing or frame.buffer is not None:
            super().visit_Include(node, frame)
            return
        self.writeline("template = environment.get_template(", node)
        self.visit(node.template, frame)
        self.write(f", {self.name!r})")
        self.writeline(
            "yield environment.concat(template.root_render_func("
            f"template.new_context(context.get_all(), True, {self.dump_local_context(frame)})))"
        )

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        if self.environment.is_async:
            super().visit_Getattr(node, frame)
            return
        # `environment.getattr(obj, "name")` is a Python call per `.name` in a template, and a page has
        # a hundred of them: the attribute is read by the builtin first, and Jinja's function (an item
        # of a mapping, else undefined) runs only when there is no such attribute. Same result.
        self.write("(_ga_v if (_ga_v := getattr((_ga_o := ")
        self.visit(node.node, frame)
        self.write(f"), {node.attr!r}, missing)) is not missing else environment.getattr(_ga_o, {node.attr!r}))")

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if not getattr(node, _DIRECT, False) or forward_caller or self.environment.is_async:
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        self.write("(")
        self.visit(node.node, frame)
        self.write(")(*()")  # `signature` starts each argument with ", "
        self.signature(node, frame)
        self.write(")")


class _FoldConstants(NodeTransformer):
    """Replaces, in one template's syntax tree, each call whose result is fixed for a language and an
    app by that result: `_("Plan")` and `{% trans %}…{% endtrans %}` without placeholders (the
    language's catalog text, as the page's `_` gives it: `Markup`, `%%` made `%`), and
    `url_for("name", key="value")` with only literal arguments (the app's routes do not change while
    it runs). A message with placeholders (`_("Renews on %(date)s", date=d)`) becomes its catalog
    text as `Markup` `%` the values, which is what the page's `_` does with them (escaping each).
    A call with a non-literal message or route, or `*args`/`**kwargs`, is left to run per render;
    one of a plain helper or of a method is marked `_DIRECT`. Names in `shadowed` (assigned in
    the template) are left alone."""

    def __init__(self, language: str, eval_context: nodes.EvalContext, app: Any, shadowed: set[str]) -> None:
        self.gettext, self.message = i18n.page_gettext(language), i18n.page_message(language)
        self.eval_context, self.app, self.shadowed = eval_context, app, shadowed

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        self.generic_visit(node)  # arguments first (changed in place)
        callee = node.node
        if isinstance(callee, nodes.Getattr) or (
            isinstance(callee, nodes.Name) and callee.name in _PLAIN_CALLABLES - self.shadowed
        ):
            setattr(node, _DIRECT, True)
            return node
        if not (
            isinstance(callee, nodes.Name)
            and callee.name in _FOLDED_CALLS - self.shadowed
            and node.dyn_args is None
            and node.dyn_kwargs is None
            and len(node.args) == 1
            and isinstance(node.args[0], nodes.Const)
            and isinstance(node.args[0].value, str)
        ):
            return node
        if callee.name == "url_for":
            if not all(isinstance(k.value, nodes.Const) for k in node.kwargs):
                return node
            try:
                parameters = tuple(sorted((k.key, k.value.value) for k in node.kwargs))  # type: ignore[attr-defined]
                value: Any = _route_path(self.app, node.args[0].value, parameters)
            except Exception:
                return node
            return nodes.Const(value, lineno=node.lineno)
        if node.kwargs:  # placeholders: the catalog text compiled in, `%` with the values (escaped) per render
            text = nodes.MarkSafe(nodes.Const(str(self.message(node.args[0].value))))
            values = nodes.Dict([nodes.Pair(nodes.Const(k.key), k.value) for k in node.kwargs])
            return nodes.Mod(text, values).set_lineno(node.lineno)
        value = self.gettext(self.eval_context, node.args[0].value)
        return nodes.MarkSafe(nodes.Const(str(value))).set_lineno(node.lineno)


class LocalizedEnvironment(Environment):
    """An overlay of the app's Jinja environment (same loader, globals, tests, extensions and
    settings) for one page language and one app, whose templates are compiled with the calls that
    cannot change for them already made (`_FoldConstants`), so that a render does not repeat them,
    and with the plain helpers called directly (`_DIRECT`). Its `t` filter is bound to the
    language. Made by `localized_environment`; `PageTemplate.render` renders a request's page with
    the one of the request's language.

    What this relies on: the page's `_`, `gettext` and `url_for` are the helpers of
    `PageTemplate.new_context` and `configure_engine` (no page variable and no `{% with %}` around an
    include takes those names), and whatever a template calls by a name of `_PLAIN_CALLABLES` or as
    a method is not a Jinja `pass_context`/`pass_eval_context`/`pass_environment` function (none in
    this app is; `tests/test_page_queries.py` renders each page both ways and compares)."""

    code_generator_class = _PageCodeGenerator
    escape_text = staticmethod(escape_text)
    language: str
    app: Any

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        eval_context = nodes.EvalContext(self, name)
        # Assigned, looped over or a macro's parameter (a `Name` stored or a `param`) in the template.
        shadowed = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
        # Only where the result is what a render would give: autoescaped templates (the catalog's text
        # is markup there) without an `{% autoescape %}` block.
        if eval_context.autoescape is not True or any(tree.find_all(nodes.EvalContextModifier)):
            return tree
        return _FoldConstants(self.language, eval_context, self.app, shadowed).visit(tree)


def localized_environment(env: Environment, language: str, app: Any) -> LocalizedEnvironment:
    """The `LocalizedEnvironment` of `env` for `language` (one of `i18n.LANGUAGES`) and `app`, made once.

    Remembered on `env` by (language, app): a compiled template holds that language's catalog text
    and that app's route paths, and nothing else of a request (per-person values are still looked
    up at render time). Filters registered on `env` after this is first called are not seen by it
    (all are registered by `configure_engine`, before the first render).
    """
    made: dict[tuple[str, int], LocalizedEnvironment] = env.__dict__.setdefault("_localized", {})
    localized = made.get((language, id(app)))
    if localized is None or localized.app is not app:
        overlay = env.overlay(cache_size=env.cache.capacity if env.cache is not None else 400)  # type: ignore[attr-defined]
        overlay.__class__ = LocalizedEnvironment  # the overlay with `_parse` folding (no new state)
        assert isinstance(overlay, LocalizedEnvironment)
        localized = overlay
        localized.language, localized.app = language, app
        localized.filters = {**env.filters, "t": i18n.page_translate_filter(language)}
        made[(language, id(app))] = localized
    return localized


class PageTemplate(JinjaTemplate):
    """A template that, rendered for a request (a `request` in its variables, as Litestar's
    `Template` response passes), gets the helpers bound to that person's preferences
    (`i18n.page_callables`: `_`, `ngettext`, `money`, `date`, ...) as variables, resolved once per
    render instead of once per call, and is rendered from the `LocalizedEnvironment` of the
    person's language (the same template with its fixed texts and links compiled in). Included
    templates share the page's context and environment and so the same helpers; anything rendered
    without a request keeps the global helpers."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        if self.name is not None and not isinstance(self.environment, LocalizedEnvironment):
            request = kwargs.get("request") if not args else dict(*args, **kwargs).get("request")
            if request is not None and hasattr(request, "scope") and hasattr(request, "app"):
                language = i18n.request_preferences(request).language
                template = localized_environment(self.environment, language, request.app).get_template(self.name)
                return template.render(*args, **kwargs)
        return super().render(*args, **kwargs)

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
        # As `Template.new_context`, with the template's globals (a `ChainMap` of its own and the
        # environment's) as one plain dict: Jinja copies them into each context and takes their
        # keys, once per render and per include, and a `ChainMap` does both key by key in Python.
        chained, flat = self.globals, dict[str, Any]()
        if isinstance(chained, ChainMap):
            for mapping in reversed(chained.maps):
                flat.update(mapping)
        else:
            flat.update(chained)
        return runtime.new_context(self.environment, self.name, self.blocks, vars, shared, flat, locals)


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
