"""Each signed-in page reads what it shows in at most two SQL statements, over indexes.

Every statement the app's pooled connections run is logged (an asyncpg query logger added to each
new connection, `app.db.QUERY_LOGGERS`), so the count includes the signed-in user's lookup, the
pool's reset on release and anything a dependency or template helper would add.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jinja2 import Template as JinjaTemplate

from app import db as app_db
from app.asgi import create_app
from app.auth.tables import User
from app.billing.service import _CATALOGUE_SQL, _PERSON_SQL
from app.billing.tables import LIVE_STATUSES, Customer, PaymentTransaction, Plan, Price, Subscription
from app.entitlements.tables import Entitlement, Feature, PlanFeature
from app.settings import Settings
from app.web import templating
from piccolo_conf import DB
from tests.conftest import settings_env, sign_in
from tests.support.oidc_provider import ScriptedProvider
from tests.support.servers import free_port, serve_in_loop

PAGES = ("/account", "/plans", "/billing/history", "/portal")
MAX_STATEMENTS = 2


@pytest.fixture
async def statements() -> AsyncIterator[list[str]]:
    """Every SQL statement the app runs from now on (connections opened after this fixture)."""
    seen: list[str] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    app_db.QUERY_LOGGERS.append(log)
    try:
        yield seen
    finally:
        app_db.QUERY_LOGGERS.remove(log)


@pytest.fixture
async def counted_client(
    statements: list[str], oidc_provider: ScriptedProvider, tmp_path: Path, db: None
) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}")
    async with (
        serve_in_loop(create_app(Settings.from_env(env)), port) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        yield client


async def seed_subscriber(subject: str) -> None:
    """A catalogue of two plans and `subject` as a Pro subscriber with a card, 10 payments and 3 features."""
    now = datetime.now(UTC)
    user = await User.objects().get(User.subject == subject)
    assert user is not None
    basic = Plan(key="basic", stripe_product_id="prod_b", name="Basic", features='["1 project"]', sort_order=1)
    pro = Plan(key="pro", stripe_product_id="prod_p", name="Pro", features='["Unlimited projects"]', sort_order=2)
    await Plan.insert(basic, pro)
    prices = [
        Price(
            stripe_price_id=f"price_{p.key}_{i}",
            plan=p.id,
            lookup_key=f"{p.key}_{i}ly",
            unit_amount_cents=900 * n,
            type="recurring",
            interval=i,
        )
        for p in (basic, pro)
        for i, n in (("month", 1), ("year", 10))
    ]
    await Price.insert(*prices)
    await Feature.insert(*(Feature(lookup_key=k, name=k.title()) for k in ("projects", "domain", "support")))
    await PlanFeature.insert(
        PlanFeature(plan=basic.id, feature_lookup_key="projects"),
        *(PlanFeature(plan=pro.id, feature_lookup_key=k) for k in ("projects", "domain")),
    )
    customer = Customer(user=user.id, stripe_customer_id="cus_counted", card_brand="visa", card_last4="4242")
    await Customer.insert(customer)
    subscription = Subscription(
        stripe_subscription_id="sub_counted",
        customer=customer.id,
        user=user.id,
        status="active",
        price=prices[2].id,
        stripe_price_id=prices[2].stripe_price_id,
        current_period_end=now + timedelta(days=20),
        stripe_updated_at=now,
        next_charge_amount_cents=1800,
        next_charge_currency="usd",
        next_charge_at=now + timedelta(days=20),
    )
    await Subscription.insert(subscription)
    await PaymentTransaction.insert(
        *(
            PaymentTransaction(
                user=user.id,
                subscription=subscription.id,
                stripe_payment_intent_id=f"pi_counted_{n}",
                stripe_customer_id="cus_counted",
                stripe_price_id=prices[2].stripe_price_id,
                amount_cents=1800,
                status="succeeded",
                description=f"Payment number {n}",
                created_at=now - timedelta(days=30 * n),
            )
            for n in range(1, 11)
        )
    )
    await Entitlement.insert(
        *(
            Entitlement(customer=customer.id, user=user.id, feature=k, source="subscription")
            for k in ("projects", "domain")
        ),
        Entitlement(
            customer=customer.id, user=user.id, feature="support", source="grant", until=now + timedelta(days=9)
        ),
    )


async def statements_for(client: httpx.AsyncClient, statements: list[str], path: str) -> list[str]:
    await client.get(path)  # first: per-process caches (the brand), per-connection type introspection
    await asyncio.sleep(0.05)
    statements.clear()
    response = await client.get(path)
    await asyncio.sleep(0.05)  # query loggers are called soon after each statement
    assert response.status_code == 200, f"{path}: {response.status_code}"
    return list(statements)


async def test_each_signed_in_page_runs_at_most_two_sql_statements(
    counted_client: httpx.AsyncClient, statements: list[str], oidc_provider: ScriptedProvider
) -> None:
    await sign_in(counted_client, "counted")
    await seed_subscriber("counted")
    account = await counted_client.get("/account")
    assert "Pro" in account.text and "4242" in account.text and "Domain" in account.text and "Support" in account.text
    plans = await counted_client.get("/plans")
    assert "Current plan" in plans.text and "you would lose: Domain" in plans.text
    history = await counted_client.get("/billing/history")
    assert history.text.count("Payment number") == 10
    portal = await counted_client.get("/portal")
    assert "Cancelling ends your access to: Domain, Projects" in portal.text
    counts = {path: await statements_for(counted_client, statements, path) for path in PAGES}
    too_many = {path: seen for path, seen in counts.items() if len(seen) > MAX_STATEMENTS}
    assert not too_many, "\n\n".join(
        f"{path}: {len(seen)} statements\n" + "\n".join(seen) for path, seen in too_many.items()
    )


async def plan_of(sql: str, *args: Any) -> str:
    """EXPLAIN of `sql` with sequential scans priced out, so any table without a usable index shows one."""
    async with DB.transaction():
        await DB.run_ddl("SET LOCAL enable_seqscan = off")
        rows = await User.raw("EXPLAIN " + sql, *args)
    return "\n".join(row["QUERY PLAN"] for row in rows)


async def test_page_queries_use_indexes(db: None) -> None:
    live = list(LIVE_STATUSES)
    person = await plan_of(_PERSON_SQL, datetime.now(UTC), live, live, ["succeeded"], 1)
    catalogue = await plan_of(_CATALOGUE_SQL)
    assert "Seq Scan" not in person, person
    # The catalogue lists every active plan (a handful of rows); each plan's prices and features by index.
    assert [line for line in catalogue.splitlines() if "Seq Scan" in line] == [
        line for line in catalogue.splitlines() if "Seq Scan on plan p" in line
    ], catalogue
    assert "price_plan_id" in catalogue and "plan_feature_plan_id" in catalogue, catalogue
    for index in (
        "user_pkey",
        "customer_user_id",
        "subscription_user_id",
        "payment_transaction_user_created_id",
        "entitlement_user_id",
    ):
        assert index in person, f"{index} not used:\n{person}"


async def test_rows_mapped_without_piccolo_equal_piccolo_objects(db: None) -> None:
    """`row_of` (values put straight into the instance's `__dict__`) gives what Piccolo's own query gives,
    from a plain row and from a composite value, and the object still saves like one Piccolo loaded."""
    plan = Plan(key="pro", stripe_product_id="prod_rows", name="Pro", features='["Unlimited"]', sort_order=2)
    await Plan.insert(plan)
    await Price.insert(Price(stripe_price_id="price_rows", plan=plan.id, unit_amount_cents=900, interval="month"))
    loaded = await Plan.objects().get(Plan.id == plan.id)
    price = await Price.objects().get(Price.stripe_price_id == "price_rows")
    assert loaded is not None and price is not None
    plain = app_db.row_of(Plan, (await Plan.raw("SELECT * FROM plan WHERE id = {}", plan.id))[0])
    composite = (await Price.raw("SELECT pr AS price FROM price pr WHERE pr.id = {}", price.id))[0]["price"]
    mapped_price = app_db.row_of(Price, composite)
    assert plain is not None and mapped_price is not None
    assert plain.to_dict() == loaded.to_dict() and mapped_price.to_dict() == price.to_dict()
    assert (plain.name, mapped_price.unit_amount_cents, mapped_price.plan) == ("Pro", 900, plan.id)
    plain.name = "Pro 2"
    await plain.save()
    assert (await Plan.objects().get(Plan.id == plan.id)).name == "Pro 2"  # type: ignore[union-attr]


async def test_fetch_runs_in_the_current_transaction_with_numbered_placeholders(db: None) -> None:
    """`app.db.fetch` sees what the current transaction wrote and not yet committed (it runs on that
    transaction's connection, as Piccolo's `raw` does), and binds each `{}` in order."""
    async with DB.transaction():
        await Plan.insert(Plan(key="in_tx", stripe_product_id="prod_tx", name="Tx", features="[]", sort_order=7))
        rows = await app_db.fetch("SELECT key, {}::int AS two FROM plan WHERE key = {} AND '{{}}' = '{{}}'", 2, "in_tx")
        assert [(row["key"], row["two"]) for row in rows] == [("in_tx", 2)]
    assert app_db._numbered("a {} b {{x}} {}") == "a $1 b {x} $2"


async def test_pages_read_the_same_from_each_language_s_compiled_templates(
    counted_client: httpx.AsyncClient, oidc_provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page, whole and as its HTMX fragment, in each language, is the same HTML whether rendered
    from its language's `LocalizedEnvironment` (texts and links compiled in, plain helpers called
    directly) or from the plain environment with the page's helpers, as before."""
    await sign_in(counted_client, "same")
    await seed_subscriber("same")
    used: list[str] = []
    localized = templating.localized_environment

    def spy(env: Any, language: str, app: Any) -> Any:
        used.append(language)
        return localized(env, language, app)

    async def pages() -> dict[tuple[str, str, str], str]:
        seen = {}
        for path in PAGES:
            for language in ("en", "de", "fr", "es"):
                for fragment in ("", "true"):
                    headers = {"Accept-Language": language, **({"HX-Request": fragment} if fragment else {})}
                    response = await counted_client.get(path, headers=headers)
                    assert response.status_code == 200, (path, language, fragment)
                    seen[(path, language, fragment)] = response.text
        return seen

    monkeypatch.setattr(templating, "localized_environment", spy)
    compiled = await pages()
    assert set(used) == {"en", "de", "fr", "es"}
    monkeypatch.setattr(templating.PageTemplate, "render", JinjaTemplate.render)  # the plain environment
    plain = await pages()
    assert compiled == plain
    assert "Tarif" in compiled[("/account", "de", "")] and "Domain" in compiled[("/plans", "fr", "true")]
