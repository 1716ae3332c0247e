"""The billing portal application package."""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar

# Piccolo warns at import that the `user` table name is a reserved word; it is quoted everywhere.
warnings.filterwarnings("ignore", "We recommend giving your table a different name", UserWarning)


def _running_billing_command(argv: list[str]) -> bool:
    """True when the `litestar` CLI was started for `litestar [options] billing …`."""
    return argv[0].endswith("litestar") and "billing" in argv[1:]


def create_app() -> Litestar:
    """The app the `litestar` CLI finds by itself (`app.create_app`).

    For `litestar billing …` it is a bare app that only carries the command group: the CLI builds
    its app before it parses the command, and the billing commands read their own settings when
    they run. So `litestar billing --help` works with no settings at all and every command starts
    without importing the web app. Any other command gets `app.asgi.create_app()`.
    """
    if _running_billing_command(sys.argv):
        from litestar import Litestar

        from app.cli import BillingCLIPlugin

        return Litestar(plugins=[BillingCLIPlugin()], openapi_config=None, logging_config=None)
    from app.asgi import create_app as factory

    return factory()
