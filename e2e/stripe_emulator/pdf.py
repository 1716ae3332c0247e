"""A real PDF for `invoice.invoice_pdf` (https://docs.stripe.com/api/invoices/object#invoice_object-invoice_pdf)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF

from .engine import money


def _latin1(text: str) -> str:
    # The PDF core fonts cover Latin-1 only; other characters (€, •) are spelled out or replaced.
    return text.replace("€", "EUR ").replace("•", "-").replace("—", "-").encode("latin-1", "replace").decode("latin-1")


def invoice_pdf(inv: dict[str, Any], business: str) -> bytes:
    """Render an invoice as a one-page A4 PDF: header, billing details, lines and totals."""
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Invoice {inv.get('number') or inv['id']}"))
    pdf.set_author(_latin1(business))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "Invoice", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    date = datetime.fromtimestamp(inv["created"], UTC).strftime("%B %d, %Y")
    for label, value in (
        ("Invoice number", inv.get("number") or inv["id"]),
        ("Date of issue", date),
        ("Status", inv["status"]),
        ("From", business),
        ("Bill to", " ".join(x for x in (inv.get("customer_name"), inv.get("customer_email")) if x) or inv["customer"]),
    ):
        pdf.cell(45, 6, _latin1(label))
        pdf.cell(0, 6, _latin1(str(value)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(120, 7, "Description", border="B")
    pdf.cell(20, 7, "Qty", border="B")
    pdf.cell(0, 7, "Amount", border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for line in inv["lines"]["data"]:
        pdf.cell(120, 7, _latin1(str(line["description"])[:70]))
        pdf.cell(20, 7, str(line["quantity"]))
        pdf.cell(0, 7, _latin1(money(line["amount"], line["currency"])), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    for label, key in (("Total", "total"), ("Amount paid", "amount_paid"), ("Amount due", "amount_remaining")):
        pdf.cell(140, 7, label)
        pdf.cell(0, 7, _latin1(money(inv[key], inv["currency"])), align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
