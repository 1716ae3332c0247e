"""`/admin`: the operator console (roles `support`: read; `admin`: everything), and `/brand/logo`.

Handlers parse input, call the services of `app.admin`, and return a page, a partial for HTMX, or a
303 with a flash message (Post/Redirect/Get). Read-only pages carry `requires_support`; every
handler that changes something carries `requires_admin` as well.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.admin import analytics_service as analytics
from app.admin import branding_service as branding
from app.admin import configurations_service as configurations
from app.admin import entitlements_service as entitlements
from app.admin import events_service as events
from app.admin import host_service as host
from app.admin.audit import recent_actions
from app.admin.charts import bar_chart, column_chart
from app.admin.customers_service import NothingToResync, customer_detail, resync_customer, search_customers
from app.auth.tables import User
from app.portal.service import WORKFLOWS
from app.stripe_gateway import StripeGateway, StripeGatewayError, StripeNotFound
from app.web.errors import stripe_failure_response
from app.web.guards import requires_admin, requires_support
from app.web.htmx import page_or_fragment, wants_fragment
from app.web.i18n import N_, Message, request_preferences, timezone_named
from app.web.redirects import safe_next_path
from app.web.validation import within_int4

logger = logging.getLogger(__name__)
Req = Request[Any, Any, Any]


def _tz(request: Req) -> str:
    """The operator's IANA time zone (browser cookie, else `DEFAULT_TIMEZONE`)."""
    return timezone_named(request.cookies.get("tz"), request.app.state.settings.app.default_timezone).key


def _back(path: str, text: str, category: str = "success", request: Req | None = None, **variables: Any) -> Redirect:
    """303 to `path` with `text` (marked with `N_`, `%(name)s` filled from `variables`) as a toast
    in the operator's language."""
    if request is not None:
        flash(request, request_preferences(request).gettext(text, **variables), category=category)
    return Redirect(path, status_code=HTTP_303_SEE_OTHER)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


async def _form_lists(request: Req) -> dict[str, list[str]]:
    form = await request.form()
    return {key: [str(v) for v in form.getall(key)] for key in form}


class AdminController(Controller):
    """The console's home and audit trail."""

    path = "/admin"
    guards = [requires_support]  # noqa: RUF012

    @get("/", name="admin:index", cache=False)
    async def index(self) -> Template:
        """Counts of events and the latest operator actions."""
        return Template(
            "admin/index.html", context={"overview": await events.overview(), "actions": await recent_actions(10)}
        )

    @get("/audit", name="admin:audit", cache=False)
    async def audit(self, action: FromQuery[str | None] = None) -> Template:
        """The newest 200 operator actions (who, what, before, after, when)."""
        return Template(
            "admin/audit.html", context={"actions": await recent_actions(200, action=action or None), "action": action}
        )


class EventsController(Controller):
    """Stored Stripe events: filter, inspect, replay, ignore, reconcile."""

    path = "/admin/events"
    guards = [requires_support]  # noqa: RUF012

    @get("/", name="admin:events", cache=False)
    async def list(
        self,
        request: Req,
        status: FromQuery[str | None] = None,
        type: FromQuery[str | None] = None,
        customer: FromQuery[str | None] = None,
        date_from: Annotated[str | None, FromQuery] = None,
        date_to: Annotated[str | None, FromQuery] = None,
        before: FromQuery[int | None] = None,
    ) -> Template:
        """The filtered list (50 per page, newest first); HTMX filter requests get only the rows."""
        flt = events.EventFilter(
            status=status or None,
            type=(type or "").strip() or None,
            customer=(customer or "").strip() or None,
            date_from=_date(date_from),
            date_to=_date(date_to),
            timezone=_tz(request),
        )
        if not within_int4(before):
            raise ValidationException("before must be an event row id")
        rows = await events.list_events(flt, before_id=before)
        context = {
            "rows": rows,
            "flt": flt,
            "statuses": events.STATUSES,
            "overview": await events.overview(),
            "next_before": rows[-1]["id"] if len(rows) == events.PAGE_SIZE else None,
            "raw": {"date_from": date_from or "", "date_to": date_to or ""},
        }
        template = "admin/_events_rows.html" if request.headers.get("hx-request") == "true" else "admin/events.html"
        return Template(template, context=context)

    @get("/{event_id:str}", name="admin:event", cache=False)
    async def show(self, event_id: FromPath[str]) -> Template:
        """One event: payload, attempts, last error."""
        event = await events.get_event(event_id)
        if event is None:
            raise NotFoundException
        return Template("admin/event.html", context={"event": event})

    @post("/replay", name="admin:events:replay", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER)
    async def replay(
        self, request: Req, current_user: NamedDependency[User], stripe_gateway: NamedDependency[StripeGateway]
    ) -> Response[Any]:
        """Replay the selected events (`event` repeated), or every failed one (`all_failed`)."""
        form = await _form_lists(request)
        ids = form.get("event", [])
        if not ids and not form.get("all_failed"):
            return _back("/admin/events", N_("Select at least one event to replay."), "warning", request)
        applied = await events.replay(stripe_gateway, ids or None, failed=not ids, actor=current_user)
        # `back` comes from the form: only a path on this site is followed.
        back = safe_next_path((form.get("back") or [""])[0], default="/admin/events")
        done = request_preferences(request).ngettext(
            "Replayed: %(num)s event applied.", "Replayed: %(num)s events applied.", applied
        )
        return _back(back, done, request=request)

    @post("/ignore", name="admin:events:ignore", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER)
    async def ignore(self, request: Req, current_user: NamedDependency[User]) -> Redirect:
        """Mark the selected events ignored."""
        ids = (await _form_lists(request)).get("event", [])
        if not ids:
            return _back("/admin/events", N_("Select at least one event to ignore."), "warning", request)
        changed = await events.mark_ignored(ids, actor=current_user)
        done = request_preferences(request).ngettext(
            "Marked %(num)s event as ignored.", "Marked %(num)s events as ignored.", changed
        )
        return _back("/admin/events", done, request=request)

    @post("/reconcile", name="admin:events:reconcile", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER)
    async def reconcile(
        self, request: Req, current_user: NamedDependency[User], stripe_gateway: NamedDependency[StripeGateway]
    ) -> Response[Any]:
        """Run the `delivery_success=false` reconciliation now (last 72 hours)."""
        try:
            result = await events.reconcile(stripe_gateway, 72, actor=current_user)
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe could not list undelivered events. Try again."), exc)
        done = request_preferences(request).ngettext(
            "%(num)s undelivered event at Stripe, %(stored)s stored, %(applied)s applied.",
            "%(num)s undelivered events at Stripe, %(stored)s stored, %(applied)s applied.",
            result.found,
            stored=result.stored,
            applied=result.applied,
        )
        return _back("/admin/events", done, request=request)


class CustomersController(Controller):
    """Customer lookup and resync."""

    path = "/admin/customers"
    guards = [requires_support]  # noqa: RUF012

    @get("/", name="admin:customers", cache=False)
    async def search(self, request: Req, q: FromQuery[str] = "") -> Template:
        """Search by email, Stripe customer id or OIDC subject; HTMX gets only the results."""
        context = {"rows": await search_customers(q), "q": q}
        template = (
            "admin/_customer_rows.html" if request.headers.get("hx-request") == "true" else "admin/customers.html"
        )
        return Template(template, context=context)

    @get("/{user_id:int}", name="admin:customer", cache=False)
    async def show(self, user_id: FromPath[int]) -> Template:
        """Local state, entitlements, subscriptions, payments, portal sessions and billing changes of one person."""
        detail = await customer_detail(user_id)
        if detail is None:
            raise NotFoundException
        return Template(
            "admin/customer.html", context={"d": detail, "ent": await entitlements.person_entitlements(user_id)}
        )

    async def _entitlements_answer(
        self,
        request: Req,
        user_id: int,
        message: str,
        form: entitlements.OverrideForm | None = None,
        errors: dict[str, str] | None = None,
    ) -> Response[Any]:
        """After a grant/revoke/end: htmx gets the entitlements card (422 with the errors); a plain form
        gets the whole page again with the errors (422), or a 303 back with a flash message."""
        if not errors and not wants_fragment(request):
            return _back(f"/admin/customers/{user_id}", message, request=request)
        detail = await customer_detail(user_id)
        if detail is None:
            raise NotFoundException
        ent = await entitlements.person_entitlements(user_id)
        ent.form = form or entitlements.OverrideForm()
        ent.errors = errors or {}
        return page_or_fragment(
            request,
            "admin/customer.html",
            "admin/_entitlements.html",
            {"d": detail, "ent": ent, "notice": None if errors else message},
            status_code=422 if errors else 200,
        )

    @post(
        "/{user_id:int}/entitlements",
        name="admin:customer:entitlements",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def add_override(
        self, request: Req, user_id: FromPath[int], current_user: NamedDependency[User]
    ) -> Response[Any]:
        """Grant or revoke (`kind`) a catalogue feature, optionally until a date (UTC), with a note."""
        person = await User.objects().get(User.id == user_id)
        if person is None:
            raise NotFoundException
        form = entitlements.OverrideForm.from_post(await _form_lists(request))
        try:
            await entitlements.add_override(person, form, current_user)
        except entitlements.OverrideInvalid as exc:
            return await self._entitlements_answer(request, user_id, "", form, exc.errors)
        verb = "Granted" if form.kind == "grant" else "Revoked"
        until = f" until {form.until} (UTC)" if form.until else ""
        return await self._entitlements_answer(request, user_id, f"{verb} {form.feature}{until}.")

    @post(
        "/{user_id:int}/entitlements/{override_id:int}/end",
        name="admin:customer:entitlements:end",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def end_override(
        self, request: Req, user_id: FromPath[int], override_id: FromPath[int], current_user: NamedDependency[User]
    ) -> Response[Any]:
        """End one operator grant or revocation now."""
        person = await User.objects().get(User.id == user_id)
        if person is None:
            raise NotFoundException
        ended = await entitlements.end_override(person, override_id, current_user)
        if ended is None:
            return _back(
                f"/admin/customers/{user_id}", N_("That grant or revocation has already ended."), "warning", request
            )
        removed = (
            Message(N_("Removed the grant of %(feature)s."), feature=ended.feature)
            if ended.kind == "grant"
            else Message(N_("Removed the revocation of %(feature)s."), feature=ended.feature)
        )
        return await self._entitlements_answer(request, user_id, removed)

    @post(
        "/{user_id:int}/resync", name="admin:customer:resync", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER
    )
    async def resync(
        self,
        request: Req,
        user_id: FromPath[int],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
    ) -> Response[Any]:
        """Re-read this person's Stripe customer now."""
        back = f"/admin/customers/{user_id}"
        try:
            added = await resync_customer(stripe_gateway, user_id, current_user)
        except NothingToResync:
            return _back(back, N_("This person has no Stripe customer yet."), "warning", request)
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe did not answer; nothing was changed."), exc)
        done = request_preferences(request).ngettext(
            "Resynced from Stripe: %(num)s change recorded.", "Resynced from Stripe: %(num)s changes recorded.", added
        )
        return _back(back, done, request=request)


class AnalyticsController(Controller):
    """Portal analytics for a period, with charts and CSV."""

    path = "/admin/analytics"
    guards = [requires_support]  # noqa: RUF012

    @get("/", name="admin:analytics", cache=False)
    async def show(
        self,
        request: Req,
        days: FromQuery[int | None] = None,
        date_from: Annotated[str | None, FromQuery] = None,
        date_to: Annotated[str | None, FromQuery] = None,
    ) -> Template:
        """Figures for the chosen preset or dates (default: the last 30 days), in the operator's zone."""
        error = None
        try:
            period = analytics.period_for(days, _date(date_from), _date(date_to), _tz(request))
        except analytics.BadPeriod as exc:
            error = exc.args[0]
            period = analytics.period_for(30, None, None, _tz(request))
        figures = await analytics.period_figures(period)
        words = request_preferences(request)
        _ = words.gettext
        charts = {
            "workflows": bar_chart(_("Sessions per workflow"), figures.by_workflow, "workflow", "sessions", words),
            "days": column_chart(_("Sessions per day"), figures.by_day, "day", "sessions", words),
            "cancellation-reasons": bar_chart(
                _("Cancellations by reason"), figures.cancellations_by_reason, "reason", "cancellations", words
            ),
            "cancellation-plans": bar_chart(
                _("Cancellations by plan"), figures.cancellations_by_plan, "plan", "cancellations", words
            ),
        }
        query = f"date_from={period.first.isoformat()}&date_to={period.last.isoformat()}"
        return Template(
            "admin/analytics.html",
            context={
                "f": figures,
                "charts": charts,
                "days": days,
                "error": error,
                "query": query,
                "presets": analytics.PRESETS,
            },
            status_code=422 if error else 200,
        )

    @get("/{table_file:str}", name="admin:analytics:csv", cache=False)
    async def csv(
        self,
        request: Req,
        table_file: FromPath[str],
        date_from: Annotated[str | None, FromQuery] = None,
        date_to: Annotated[str | None, FromQuery] = None,
    ) -> Response[str]:
        """One table behind a chart as CSV (`/admin/analytics/<table>.csv`), for the same period."""
        table = table_file.removesuffix(".csv")
        if not table_file.endswith(".csv") or table not in analytics.TABLES:
            raise NotFoundException
        try:
            period = analytics.period_for(None, _date(date_from), _date(date_to), _tz(request))
        except analytics.BadPeriod as exc:
            return Response(request_preferences(request).gettext(exc.args[0]), status_code=400, media_type="text/plain")
        figures = await analytics.period_figures(period)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=analytics.TABLES[table], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(analytics.table_rows(figures, table))
        name = f"portal-{table}-{period.first}-{period.last}.csv"
        return Response(
            out.getvalue(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )


class ConfigurationsController(Controller):
    """Customer Portal configurations in Stripe."""

    path = "/admin/configurations"
    guards = [requires_support]  # noqa: RUF012

    @get("/", name="admin:configurations", cache=False)
    async def list(self, request: Req, stripe_gateway: NamedDependency[StripeGateway]) -> Response[Any]:
        """Every configuration, and the drift between `portal.toml` and Stripe."""
        try:
            items = await configurations.list_configurations(stripe_gateway)
            drift = await configurations.drift(stripe_gateway)
        except StripeGatewayError as exc:
            return stripe_failure_response(
                request, N_("Stripe did not answer; the configurations cannot be shown."), exc
            )
        return Template("admin/configurations.html", context={"items": items, "drift": drift, "workflows": WORKFLOWS})

    @get("/export.toml", name="admin:configurations:export", cache=False)
    async def export(self, request: Req, stripe_gateway: NamedDependency[StripeGateway]) -> Response[Any]:
        """Stripe's current configurations as a TOML download."""
        try:
            text = await configurations.export_toml(stripe_gateway)
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe did not answer; nothing was exported."), exc)
        return Response(
            text,
            media_type="application/toml",
            headers={"Content-Disposition": 'attachment; filename="portal-configurations.toml"'},
        )

    async def _form_page(
        self,
        configuration_id: FromPath[str] | None,
        form: configurations.ConfigurationForm,
        errors: dict[str, str],
        status: int = 200,
    ) -> Template:
        return Template(
            "admin/configuration_form.html",
            context={
                "configuration_id": configuration_id,
                "form": form,
                "errors": errors,
                "prices": await configurations.catalogue_prices(),
                "fields": configurations.CUSTOMER_UPDATE_FIELDS,
                "reasons": configurations.CANCELLATION_REASONS,
                "headline_max": configurations.HEADLINE_MAX,
            },
            status_code=status,
        )

    @get("/new", name="admin:configurations:new", guards=[requires_admin], cache=False)
    async def new(self) -> Template:
        """An empty form."""
        return await self._form_page(None, configurations.ConfigurationForm(invoice_history=True), {})

    @post("/new", name="admin:configurations:create", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER)
    async def create(
        self, request: Req, current_user: NamedDependency[User], stripe_gateway: NamedDependency[StripeGateway]
    ) -> Response[Any]:
        """Validate, create in Stripe, and show it."""
        form = configurations.ConfigurationForm.from_post(await _form_lists(request))
        try:
            cfg = await configurations.save_configuration(stripe_gateway, None, form, current_user)
        except configurations.ConfigurationInvalid as exc:
            return await self._form_page(None, form, exc.errors, 422)
        except StripeGatewayError as exc:
            return stripe_failure_response(
                request, Message(N_("Stripe refused the configuration: %(reason)s"), reason=str(exc)), exc
            )
        return _back(f"/admin/configurations/{cfg['id']}", N_("Configuration created."), request=request)

    @get("/{configuration_id:str}", name="admin:configuration", cache=False)
    async def show(
        self, request: Req, configuration_id: FromPath[str], stripe_gateway: NamedDependency[StripeGateway]
    ) -> Response[Any]:
        """One configuration in words."""
        try:
            cfg = await configurations.get_configuration(stripe_gateway, configuration_id)
        except StripeNotFound as exc:
            raise NotFoundException from exc
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe did not answer."), exc)
        return Template(
            "admin/configuration.html",
            context={"cfg": cfg, "plans": await configurations.plan_names(), "workflows": WORKFLOWS},
        )

    @get("/{configuration_id:str}/edit", name="admin:configuration:edit", guards=[requires_admin], cache=False)
    async def edit(
        self, request: Req, configuration_id: FromPath[str], stripe_gateway: NamedDependency[StripeGateway]
    ) -> Response[Any]:
        """The form, filled from Stripe."""
        try:
            cfg = await stripe_gateway.retrieve_portal_configuration(configuration_id)
        except StripeNotFound as exc:
            raise NotFoundException from exc
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe did not answer."), exc)
        return await self._form_page(configuration_id, configurations.ConfigurationForm.from_configuration(cfg), {})

    @post(
        "/{configuration_id:str}/edit",
        name="admin:configuration:update",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def update(
        self,
        request: Req,
        configuration_id: FromPath[str],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
    ) -> Response[Any]:
        """Validate, update in Stripe (422 with errors next to the fields when invalid)."""
        form = configurations.ConfigurationForm.from_post(await _form_lists(request))
        try:
            await configurations.save_configuration(stripe_gateway, configuration_id, form, current_user)
        except configurations.ConfigurationInvalid as exc:
            return await self._form_page(configuration_id, form, exc.errors, 422)
        except StripeNotFound as exc:
            raise NotFoundException from exc
        except StripeGatewayError as exc:
            return stripe_failure_response(
                request, Message(N_("Stripe refused the configuration: %(reason)s"), reason=str(exc)), exc
            )
        return _back(f"/admin/configurations/{configuration_id}", N_("Configuration saved."), request=request)

    @post(
        "/{configuration_id:str}/active",
        name="admin:configuration:active",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def active(
        self,
        request: Req,
        configuration_id: FromPath[str],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
    ) -> Response[Any]:
        """Activate (`active=true`) or deactivate it."""
        form = await _form_lists(request)
        active = (form.get("active") or [""])[0] == "true"
        try:
            await configurations.set_active(stripe_gateway, configuration_id, active, current_user)
        except StripeNotFound as exc:
            raise NotFoundException from exc
        except StripeGatewayError as exc:
            return stripe_failure_response(request, Message(N_("Stripe refused: %(reason)s"), reason=str(exc)), exc)
        return _back(
            f"/admin/configurations/{configuration_id}",
            N_("Activated.") if active else N_("Deactivated."),
            request=request,
        )

    @post(
        "/{configuration_id:str}/use",
        name="admin:configuration:use",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def use(
        self,
        request: Req,
        configuration_id: FromPath[str],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
    ) -> Response[Any]:
        """Make one of this app's workflows use this configuration."""
        workflow = ((await _form_lists(request)).get("workflow") or [""])[0]
        back = f"/admin/configurations/{configuration_id}"
        try:
            await configurations.use_for_workflow(stripe_gateway, configuration_id, workflow, current_user)
        except configurations.ConfigurationInvalid as exc:
            return _back(back, next(iter(exc.errors.values())), "error", request)
        except StripeNotFound as exc:
            raise NotFoundException from exc
        except StripeGatewayError as exc:
            return stripe_failure_response(request, N_("Stripe did not answer."), exc)
        return _back(
            back, N_("The %(workflow)s workflow now uses this configuration."), request=request, workflow=workflow
        )


class BrandingController(Controller):
    """The look of the app's own pages."""

    path = "/admin/branding"
    guards = [requires_admin]  # noqa: RUF012

    def _page(
        self, request: Req, view: branding.BrandingView, errors: dict[str, str], preview: bool, status: int = 200
    ) -> Template:
        return Template(
            "admin/branding.html",
            context={
                "b": view,
                "errors": errors,
                "preview": preview,
                "settings_defaults": branding.defaults(request.app.state.settings.branding),
            },
            status_code=status,
        )

    @get("/", name="admin:branding", cache=False)
    async def show(self, request: Req) -> Template:
        """The form with the current brand and its preview."""
        return self._page(request, await branding.current_branding(request.app.state.settings.branding), {}, False)

    @post("/", name="admin:branding:save", status_code=HTTP_303_SEE_OTHER)
    async def save(
        self,
        request: Req,
        current_user: NamedDependency[User],
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Response[Any]:
        """Preview (`action=preview`: re-render with the proposed brand) or save it."""
        upload = data.get("logo")
        logo = None
        if isinstance(upload, UploadFile) and upload.filename:
            content = await upload.read()
            logo = branding.Logo(content=content, content_type=upload.content_type) if content else None
        view, errors = branding.validate_branding(data, logo)
        if errors or data.get("action") == "preview":
            return self._page(request, view, errors, preview=not errors, status=422 if errors else 200)
        await branding.save_branding(
            view, logo, bool(data.get("remove_logo")), current_user, request.app.state.settings.branding
        )
        request.app.state.branding.clear()
        return _back("/admin/branding", N_("Branding saved."), request=request)


class HostApiKeysController(Controller):
    """Host API keys: list, create (shown once), revoke."""

    path = "/admin/api-keys"
    guards = [requires_support]  # noqa: RUF012

    async def _page(
        self,
        created: tuple[str, str] | None = None,
        errors: dict[str, str] | None = None,
        name: str = "",
        status: int = 200,
    ) -> Template:
        return Template(
            "admin/api_keys.html",
            context={"keys": await host.list_keys(), "created": created, "errors": errors or {}, "name": name},
            status_code=status,
        )

    @get("/", name="admin:api_keys", cache=False)
    async def list(self) -> Template:
        """Every key: prefix, name, scope, created, last used, revoked."""
        return await self._page()

    @post("/", name="admin:api_keys:create", guards=[requires_admin], status_code=200)
    async def create(self, request: Req, current_user: NamedDependency[User]) -> Template:
        """Create a read-only key and show it in full, this once (the page is not a redirect, so the
        key never passes through the session)."""
        name = ((await _form_lists(request)).get("name") or [""])[0]
        try:
            row, key = await host.create_key(name, current_user)
        except host.HostInputInvalid as exc:
            return await self._page(errors=exc.errors, name=name, status=422)
        return await self._page(created=(str(row.prefix), key))

    @post("/{prefix:str}/revoke", name="admin:api_keys:revoke", guards=[requires_admin], status_code=HTTP_303_SEE_OTHER)
    async def revoke(self, request: Req, prefix: FromPath[str], current_user: NamedDependency[User]) -> Redirect:
        """Revoke a key: it stops working at once in this process, within seconds in every other."""
        if "\x00" in prefix or len(prefix) > 32 or not await host.revoke_key(prefix, current_user):
            return _back("/admin/api-keys", N_("No active key has that prefix."), "warning", request)
        return _back("/admin/api-keys", N_("Revoked the key %(prefix)s."), request=request, prefix=prefix)


class HostWebhooksController(Controller):
    """Endpoints that receive `customer.state_changed`, and recent deliveries."""

    path = "/admin/host-webhooks"
    guards = [requires_support]  # noqa: RUF012

    async def _page(
        self,
        created: tuple[str, str] | None = None,
        errors: dict[str, str] | None = None,
        url: str = "",
        status: int = 200,
    ) -> Template:
        return Template(
            "admin/host_webhooks.html",
            context={
                "endpoints": await host.list_endpoints(),
                "deliveries": await host.recent_deliveries(),
                "created": created,
                "errors": errors or {},
                "url": url,
            },
            status_code=status,
        )

    @get("/", name="admin:host_webhooks", cache=False)
    async def list(self) -> Template:
        """Endpoints (the setting's read-only) and the newest deliveries with their status."""
        return await self._page()

    @post("/", name="admin:host_webhooks:add", guards=[requires_admin], status_code=200)
    async def add(self, request: Req, current_user: NamedDependency[User]) -> Template:
        """Add an endpoint and show its new signing secret (`whsec_…`), this once."""
        url = ((await _form_lists(request)).get("url") or [""])[0]
        try:
            row, secret = await host.add_endpoint(url, current_user)
        except host.HostInputInvalid as exc:
            return await self._page(errors=exc.errors, url=url, status=422)
        return await self._page(created=(str(row.url), secret))

    @post(
        "/{endpoint_id:int}/enabled",
        name="admin:host_webhooks:enabled",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def enabled(self, request: Req, endpoint_id: FromPath[int], current_user: NamedDependency[User]) -> Redirect:
        """Enable (`enabled=true`) or disable an endpoint."""
        on = ((await _form_lists(request)).get("enabled") or [""])[0] == "true"
        url = await host.set_endpoint_enabled(endpoint_id, on, current_user)
        if url is None:
            return _back("/admin/host-webhooks", N_("No such endpoint."), "warning", request)
        return _back(
            "/admin/host-webhooks", N_("Enabled %(url)s.") if on else N_("Disabled %(url)s."), request=request, url=url
        )

    @post(
        "/{endpoint_id:int}/delete",
        name="admin:host_webhooks:delete",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def delete(self, request: Req, endpoint_id: FromPath[int], current_user: NamedDependency[User]) -> Redirect:
        """Delete an endpoint added here or with the CLI."""
        url = await host.delete_endpoint(endpoint_id, current_user)
        if url is None:
            return _back("/admin/host-webhooks", N_("No such endpoint."), "warning", request)
        return _back("/admin/host-webhooks", N_("Deleted %(url)s."), request=request, url=url)

    @post(
        "/deliveries/{delivery_id:int}/redeliver",
        name="admin:host_webhooks:redeliver",
        guards=[requires_admin],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def redeliver(
        self, request: Req, delivery_id: FromPath[int], current_user: NamedDependency[User]
    ) -> Redirect:
        """Queue one delivery again (the worker sends it within seconds, with the same `webhook-id`)."""
        message_id = await host.redeliver(delivery_id, current_user)
        if message_id is None:
            return _back("/admin/host-webhooks", N_("No such delivery."), "warning", request)
        return _back(
            "/admin/host-webhooks", N_("Queued %(message)s for delivery again."), request=request, message=message_id
        )


@get("/brand/logo", name="brand:logo", cache=300)
async def brand_logo() -> Response[bytes]:
    """The uploaded logo image (404 when none is stored)."""
    logo = await branding.logo_image()
    if logo is None:
        raise NotFoundException
    return Response(logo.content, media_type=logo.content_type, headers={"X-Content-Type-Options": "nosniff"})


@get("/brand.css", name="brand:stylesheet", cache=86400, opt={"skip_session": True})
async def brand_stylesheet(primary: str = "", accent: str = "", part: str = "site") -> Response[str]:
    """The brand's colours as a stylesheet (`BrandingView.stylesheet_url` builds the link); `part` is
    `site` or `preview` (the branding form's preview box)."""
    css = branding.brand_stylesheet(primary[:16], accent[:16], "preview" if part == "preview" else "site")
    return Response(css, media_type="text/css; charset=utf-8")


ADMIN_CONTROLLERS: list[Any] = [
    AdminController,
    EventsController,
    CustomersController,
    AnalyticsController,
    ConfigurationsController,
    BrandingController,
    HostApiKeysController,
    HostWebhooksController,
    brand_logo,
    brand_stylesheet,
]
