"""The billing portal application package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    """Lazy alias of `app.asgi.create_app`, so `litestar <command>` finds the app by itself."""
    from app.asgi import create_app as factory

    return factory()
