"""An offline, stateful Stripe API emulator with hosted Checkout and Customer Portal pages.

Run `python -m e2e.stripe_emulator --port 12111`, or in tests `run_in_thread()`. See README.md.
"""

from .app import EmulatorApp, create_app
from .config import EmulatorConfig, WebhookTarget
from .server import RunningEmulator, run_in_thread

__all__ = ["EmulatorApp", "EmulatorConfig", "RunningEmulator", "WebhookTarget", "create_app", "run_in_thread"]
