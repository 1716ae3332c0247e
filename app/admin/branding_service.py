"""Branding of the app's own pages: product name, logo, colours, footer links.

Stored in the one `branding` row (id 1); until an operator saves it, the `BRAND_*` settings are
used. Pages get it through CSS custom properties (`--accent`, `--accent-hover`, `--accent-soft`,
`--brand-accent`) written into `base.html`. Colours are refused when text would fail WCAG 2.x AA
contrast (4.5:1 for normal text): white on the colour (buttons, badges) and the colour on the page
background (links). Stripe's own Dashboard branding (Checkout, portal, invoices) has no API, so it
is not covered here.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.admin.audit import record_action
from app.admin.tables import Branding
from app.auth.tables import User
from app.settings import BrandingSettings
from app.web.i18n import N_, Message
from piccolo_conf import DB

AA_NORMAL_TEXT = 4.5
PAGE_BACKGROUNDS = ("#ffffff", "#f6f7fb")
LOGO_TYPES = {"image/png", "image/jpeg", "image/webp"}


def _looks_like(content: bytes, content_type: str) -> bool:
    """The file starts with the signature of its declared image type (so nothing else is served as an image)."""
    if content_type == "image/png":
        return content.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/jpeg":
        return content.startswith(b"\xff\xd8\xff")
    return content[:4] == b"RIFF" and content[8:12] == b"WEBP"


MAX_LOGO_BYTES = 256 * 1024
CACHE_SECONDS = 5.0
HEX = re.compile(r"#[0-9a-f]{6}")


def _luminance(hex_color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio of two `#rrggbb` colours, 1.0 … 21.0."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(hex_color: str, other: str, amount: float) -> str:
    """`hex_color` moved `amount` (0..1) towards `other`."""
    a = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * amount):02x}" for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class BrandingView:
    """What pages use. `logo_src` is a URL (uploaded logos are served at `/brand/logo`)."""

    product_name: str
    primary_color: str
    accent_color: str
    logo_src: str | None
    support_url: str | None
    privacy_url: str | None
    terms_url: str | None

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a handful of frozen views; every page asks)
    def stylesheet_url(self, scope: str = "site") -> str:
        """`/brand.css` for these colours: the page links it (the CSP allows no inline styles). The
        colours travel in the URL, so the stylesheet can be cached for good. `scope`: `site` (`:root`)
        or `preview` (only the preview box and swatches of the branding form)."""
        return "/brand.css?" + urlencode({"primary": self.primary_color, "accent": self.accent_color, "part": scope})


def brand_stylesheet(primary: str, accent: str, scope: str = "site") -> str:
    """The brand's CSS custom properties (`--accent`, `--accent-hover`, `--accent-soft`, `--brand-accent`)
    for `:root`, or for the branding form's preview box and colour swatches (`scope="preview"`).
    A colour that is not `#rrggbb` is left out (the stylesheet's defaults apply)."""
    primary, accent = primary.lower(), accent.lower()
    declarations = []
    if HEX.fullmatch(primary):
        declarations += [
            f"--accent:{primary}",
            f"--accent-hover:{_mix(primary, '#000000', 0.18)}",
            f"--accent-soft:{_mix(primary, '#ffffff', 0.9)}",
        ]
    if HEX.fullmatch(accent):
        declarations.append(f"--brand-accent:{accent}")
    if scope != "preview":
        return f":root{{{';'.join(declarations)}}}\n"
    rules = [f".preview-box{{{';'.join(declarations)}}}"]
    if HEX.fullmatch(primary):
        rules.append(f".swatch-primary{{background:{primary}}}")
    if HEX.fullmatch(accent):
        rules.append(f".swatch-accent{{background:{accent}}}")
    return "\n".join(rules) + "\n"


def defaults(settings: BrandingSettings) -> BrandingView:
    """The brand from settings (`BRAND_*`, `SUPPORT_URL`, `PRIVACY_URL`, `TERMS_URL`)."""
    return BrandingView(
        product_name=settings.product_name,
        primary_color=settings.primary_color,
        accent_color=settings.accent_color,
        logo_src=settings.logo_url,
        support_url=settings.support_url,
        privacy_url=settings.privacy_url,
        terms_url=settings.terms_url,
    )


async def current_branding(settings: BrandingSettings) -> BrandingView:
    """The saved brand (one indexed read of the `branding` row), else the defaults from settings."""
    row = (
        await Branding.select(
            Branding.product_name,
            Branding.primary_color,
            Branding.accent_color,
            Branding.logo_url,
            Branding.support_url,
            Branding.privacy_url,
            Branding.terms_url,
            Branding.updated_at,
            Branding.logo_content_type,
        )
        .where(Branding.id == 1)
        .first()
    )
    if row is None:
        return defaults(settings)
    logo = f"/brand/logo?v={int(row['updated_at'].timestamp())}" if row["logo_content_type"] else row["logo_url"]
    return BrandingView(
        product_name=row["product_name"],
        primary_color=row["primary_color"],
        accent_color=row["accent_color"],
        logo_src=logo,
        support_url=row["support_url"],
        privacy_url=row["privacy_url"],
        terms_url=row["terms_url"],
    )


class BrandingCache:
    """The brand of one app, read at most every `CACHE_SECONDS` (pages read it on every request).

    Nothing another process needs lives here: a save clears this process's copy at once, other
    processes read the new row within `CACHE_SECONDS`.
    """

    def __init__(self, settings: BrandingSettings) -> None:
        self.settings = settings
        self._at = 0.0
        self._view: BrandingView | None = None

    async def get(self) -> BrandingView:
        """The current brand (cached)."""
        if self._view is None or time.monotonic() - self._at >= CACHE_SECONDS:
            self._view = await current_branding(self.settings)
            self._at = time.monotonic()
        return self._view

    def clear(self) -> None:
        """Forget the cached brand (after a save)."""
        self._view = None


@dataclass(frozen=True)
class Logo:
    """An uploaded logo image."""

    content: bytes
    content_type: str


def validate_branding(form: dict[str, Any], logo: Logo | None) -> tuple[BrandingView, dict[str, str]]:
    """Check a branding form; returns the proposed brand and errors by field name (empty when valid).

    Fields: `product_name` (1–80 characters), `primary_color` and `accent_color` (`#rrggbb`, at least
    4.5:1 against white text and against the page backgrounds), `logo_url`, `support_url`,
    `privacy_url`, `terms_url` (https URLs, or http for localhost; optional), and an optional
    uploaded `logo` (PNG, JPEG or WebP, at most 256 KiB).
    """
    errors: dict[str, str] = {}
    name = str(form.get("product_name") or "").strip()
    if not name or len(name) > 80:
        errors["product_name"] = Message(N_("Give a product name of 1 to 80 characters."))
    colors: dict[str, str] = {}
    # Each colour's two messages (its format, its contrast), named after the field they sit under.
    colour_messages = {
        "primary_color": (
            N_("Primary colour: write it as #rrggbb."),
            N_(
                "Primary colour %(value)s has a contrast of %(ratio)s:1 with white; WCAG AA needs at least "
                "4.5:1. Choose a darker colour."
            ),
        ),
        "accent_color": (
            N_("Accent colour: write it as #rrggbb."),
            N_(
                "Accent colour %(value)s has a contrast of %(ratio)s:1 with white; WCAG AA needs at least "
                "4.5:1. Choose a darker colour."
            ),
        ),
    }
    for key, (bad_format, low_contrast) in colour_messages.items():
        value = str(form.get(key) or "").strip().lower()
        colors[key] = value if HEX.fullmatch(value) else "#000000"
        if not HEX.fullmatch(value):
            errors[key] = Message(bad_format)
            continue
        worst = min(contrast_ratio(value, bg) for bg in PAGE_BACKGROUNDS)
        if worst < AA_NORMAL_TEXT:
            errors[key] = Message(low_contrast, value=value, ratio=f"{worst:.2f}")
    urls: dict[str, str | None] = {}
    for key in ("logo_url", "support_url", "privacy_url", "terms_url"):
        value = str(form.get(key) or "").strip()
        urls[key] = value or None
        if value:
            parts = urlsplit(value)
            local = parts.hostname in {"localhost", "127.0.0.1"}
            if not parts.netloc or (parts.scheme != "https" and not (parts.scheme == "http" and local)):
                errors[key] = Message(N_("Give a full https:// address."))
    if logo is not None:
        if logo.content_type not in LOGO_TYPES or not _looks_like(logo.content, logo.content_type):
            errors["logo"] = Message(N_("The logo must be a PNG, JPEG or WebP image."))
        elif len(logo.content) > MAX_LOGO_BYTES:
            errors["logo"] = Message(N_("The logo must be at most 256 KiB."))
    view = BrandingView(
        product_name=name or "—",
        primary_color=colors["primary_color"],
        accent_color=colors["accent_color"],
        logo_src=urls["logo_url"],
        support_url=urls["support_url"],
        privacy_url=urls["privacy_url"],
        terms_url=urls["terms_url"],
    )
    return view, errors


async def save_branding(
    view: BrandingView, logo: Logo | None, remove_logo: bool, actor: User, settings: BrandingSettings
) -> BrandingView:
    """Store a validated brand (and the uploaded logo, kept unless replaced or `remove_logo`), audit it.

    Returns the brand as now stored. Callers clear their `BrandingCache`.
    """
    before = await current_branding(settings)
    now = datetime.now(UTC)
    values: dict[Any, Any] = {
        Branding.product_name: view.product_name,
        Branding.primary_color: view.primary_color,
        Branding.accent_color: view.accent_color,
        Branding.logo_url: view.logo_src,
        Branding.support_url: view.support_url,
        Branding.privacy_url: view.privacy_url,
        Branding.terms_url: view.terms_url,
        Branding.updated_at: now,
    }
    if logo is not None:
        values[Branding.logo] = logo.content
        values[Branding.logo_content_type] = logo.content_type
    elif remove_logo:
        values[Branding.logo] = None
        values[Branding.logo_content_type] = None
    async with DB.transaction():
        if await Branding.exists().where(Branding.id == 1):
            await Branding.update(values).where(Branding.id == 1)
        else:
            await Branding.insert(Branding(id=1, **{c._meta.name: v for c, v in values.items()}))
        after = await current_branding(settings)
        await record_action(actor, "branding.saved", "branding", asdict(before), asdict(after))
    return after


async def logo_image() -> Logo | None:
    """The uploaded logo, or None."""
    row = await Branding.select(Branding.logo, Branding.logo_content_type).where(Branding.id == 1).first()
    if row is None or row["logo"] is None or not row["logo_content_type"]:
        return None
    return Logo(content=bytes(row["logo"]), content_type=str(row["logo_content_type"]))
