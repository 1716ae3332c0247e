"""Piccolo app registration: every table of every area, and the `migrations/` folder."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.admin.tables import AuditEntry, Branding
from app.api.tables import IdempotencyKey
from app.auth.tables import User
from app.billing.tables import (
    BillingChange,
    Customer,
    EventWorkerHeartbeat,
    PaymentTransaction,
    Plan,
    Price,
    ScheduledTask,
    StripeEvent,
    Subscription,
)
from app.entitlements.tables import (
    CustomerState,
    Entitlement,
    EntitlementOverride,
    Feature,
    HostApiKey,
    HostWebhook,
    HostWebhookEndpoint,
    PlanFeature,
)
from app.portal.tables import PortalConfiguration, PortalSession

APP_CONFIG = AppConfig(
    app_name="billing",
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "migrations"),
    table_classes=[
        User,
        Customer,
        Plan,
        Price,
        Subscription,
        PaymentTransaction,
        StripeEvent,
        PortalConfiguration,
        PortalSession,
        BillingChange,
        Feature,
        PlanFeature,
        Entitlement,
        EntitlementOverride,
        CustomerState,
        HostApiKey,
        HostWebhookEndpoint,
        HostWebhook,
        EventWorkerHeartbeat,
        ScheduledTask,
        IdempotencyKey,
        AuditEntry,
        Branding,
    ],
    migration_dependencies=[],
    commands=[],
)
