"""Structured logs through structlog: JSON lines in production, readable lines in development.

`configure_logging(settings)` routes the standard library's loggers (the app's, Litestar's,
uvicorn's, granian's) through structlog's `ProcessorFormatter`, so every line has one shape.
Request-scoped fields (`request_id`, `user_id`, `stripe_request_id`) live in structlog's
context variables: `RequestContextMiddleware` (app/web/security.py) binds the request id, the
session backend binds the user id, and the Stripe gateway logs Stripe's `req_…` beside its
errors. `redact_secrets` drops anything that looks like a credential before a line is written.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Any

import structlog
from structlog.types import EventDict, Processor

from app.settings import AppSettings

# Values that must never reach a log line, whatever field they hide in.
_SECRET_PATTERN = re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=_-]+|\bBearer\s+\S+")
_SECRET_KEYS = {"authorization", "cookie", "password", "secret", "session_secret", "client_secret", "api_key", "token"}


def redact_secrets(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask Stripe keys, webhook secrets and bearer tokens; drop secret-named fields."""
    event_dict.pop("color_message", None)  # uvicorn's duplicate of the message with terminal colours
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and _SECRET_PATTERN.search(value):
            event_dict[key] = _SECRET_PATTERN.sub("[redacted]", value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


def configure_logging(settings: AppSettings, stream: Any = None) -> None:
    """Send every log line through structlog: JSON under `APP_ENV=production`, else a console renderer.

    Idempotent (each call replaces the root handlers); called by `create_app()` and by the CLI's worker.
    """
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if settings.is_production
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if settings.is_production else _keep_exc_info,
            renderer,
        ],
    )
    # Lines never show a file, line, function, thread or process (the renderers print only the event
    # dict), so spare every record those lookups, a quarter of a line's cost: the standard library's
    # documented switches (Logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name, level in {"stripe": "WARNING", "httpx": "WARNING", "uvicorn.access": "WARNING"}.items():
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "granian", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _keep_exc_info(_: Any, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


def bind_request(**fields: Any) -> None:
    """Add fields (`request_id`, `user_id`) to every log line of the current request or task."""
    structlog.contextvars.bind_contextvars(**fields)


def clear_request() -> None:
    """Forget the current request's fields (at the end of a request)."""
    structlog.contextvars.clear_contextvars()
