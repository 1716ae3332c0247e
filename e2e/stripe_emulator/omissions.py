"""Every deliberate difference between the emulator's objects and Stripe's fixtures (`fixtures3.json`).

Keys are dotted paths as the fixture-shape test prints them (`invoice.subscription`,
`invoice.lines.data[].pricing.price_details`); values give the reason. The test fails on any
difference not listed here, and on any entry here that no longer differs.
"""

from __future__ import annotations

# Keys the fixture has and the emulator leaves out.
OMITTED: dict[str, str] = {
    "invoice.subscription": (
        "removed from the Invoice object in API 2025-03-31.basil (use parent.subscription_details.subscription); "
        "stripe-python 16's Invoice class has no top-level `subscription` either"
    ),
}

# Keys the emulator returns that the fixture's (partial) sample does not show.
EXTRA: dict[str, str] = {
    "charge.outcome.risk_level": "returned by real Stripe and typed in stripe-python's Charge.Outcome",
    "charge.outcome.risk_score": "returned by real Stripe and typed in stripe-python's Charge.Outcome",
    "invoice.lines.data[].pricing.price_details": "the price behind a line; typed in InvoiceLineItem.Pricing",
    "line_item.pricing.price_details": "the price behind a line; typed in InvoiceLineItem.Pricing",
    "invoiceitem.pricing.price_details": "the price behind an item; typed in InvoiceItem.Pricing",
    "invoice_payment.payment.payment_intent": "the PaymentIntent id when payment.type is payment_intent",
    "invoiceitem.parent.subscription_details.subscription_item": "typed in InvoiceItem.Parent.SubscriptionDetails",
    "billing_portal.configuration.features.subscription_update.products": (
        "the products and prices a customer may switch between; typed in stripe-python's "
        "Configuration.Features.SubscriptionUpdate (the fixture sample leaves it out)"
    ),
    "webhook_endpoint.secret": "only in the create response, as Stripe does",
}

# Subtrees whose keys depend on the data, not on the object's shape.
NOT_COMPARED: dict[str, str] = {
    "metadata": "free-form key/value pairs",
    "event.data.object": "the snapshot of whichever object the event is about (each type is compared on its own)",
    "event.data.previous_attributes": "only the keys that changed",
}
