"""Structured logs through structlog: JSON lines in production, readable lines in development.

`configure_logging(settings)` routes the standard library's loggers (the app's, Litestar's,
uvicorn's, granian's) through structlog's `ProcessorFormatter`, so every line has one shape.
Request-scoped fields (`request_id`, `user_id`, `stripe_request_id`) live in structlog's
context variables: `RequestContextMiddleware` (app/web/security.py) binds the request id, the
session backend binds the user id, and the Stripe gateway logs Stripe's `req_…` beside its
errors. `redact_secrets` drops anything that looks like a credential before a line is written.
The access line of each request (`access_line`, called by `RequestContextMiddleware`) goes through
the same processors and renderer without becoming a standard-library record first.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Any, cast

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


def _shared_processors(logger_name: Processor | None = None) -> list[Processor]:
    """The processors of every line. A line that never was a standard-library record (`access_line`)
    passes `logger_name`, which sets the name that `add_logger_name` and `ExtraAdder` read off a record."""
    named: list[Processor] = (
        [structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()] if logger_name is None else [logger_name]
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        *named,
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
    handler = LineHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    global _ACCESS_CHAIN
    _ACCESS_CHAIN = (_shared_processors(_add_access_logger_name), renderer)
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


class LineHandler(logging.StreamHandler):
    """The handler `configure_logging` puts on the root logger: records through structlog's
    `ProcessorFormatter`, and lines `access_line` has already rendered written as they are."""

    def write_line(self, line: str) -> None:
        """Write one rendered line and a newline, under the handler's lock, as `emit` writes a record;
        a failed write (a closed stream, a full disk) is reported as `emit` reports one, never raised."""
        try:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + self.terminator)
                self.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": line}))


_ACCESS_LOGGER = "app.access"
_ACCESS_CHAIN: tuple[list[Processor], Processor] | None = None
"""The processors of an access line (those of every line, without the standard library's record)
and the renderer; set by `configure_logging`."""


def _add_access_logger_name(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict["logger"] = _ACCESS_LOGGER
    return event_dict


def access_line(level: int, **fields: Any) -> None:
    """Log one request (`event="request"` with `fields`: method, path, status, duration_ms, client)
    as logger `app.access` at `level`, the caller having checked that the level is enabled.

    The same line, with the same fields and processors, as `structlog.get_logger("app.access")`
    would write through the standard library, in about half the time (no `LogRecord` is made
    for it, nor copied by the formatter): a line is written on every page view. Any other handler on
    the root logger (a test's capture, one an operator added) still receives a `LogRecord` whose
    `msg` is the event dict, as structlog's records carry."""
    processors, renderer = _ACCESS_CHAIN or (
        _shared_processors(_add_access_logger_name),
        structlog.processors.JSONRenderer(),
    )
    method = logging.getLevelName(level).lower()
    event_dict: EventDict = {**fields, "event": "request"}  # in the order structlog's own logger builds it
    for processor in processors:  # each of these gives an event dict back (the renderer comes last)
        event_dict = cast(EventDict, processor(None, method, event_dict))
    line: str | None = None
    for handler in logging.getLogger().handlers:
        if level < handler.level:
            continue
        if isinstance(handler, LineHandler):
            if line is None:
                line = str(renderer(None, method, dict(event_dict)))
            handler.write_line(line)
        else:
            handler.handle(logging.LogRecord(_ACCESS_LOGGER, level, __file__, 0, dict(event_dict), None, None))


def _keep_exc_info(_: Any, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


def bind_request(**fields: Any) -> None:
    """Add fields (`request_id`, `user_id`) to every log line of the current request or task."""
    structlog.contextvars.bind_contextvars(**fields)


def clear_request() -> None:
    """Forget the current request's fields (at the end of a request)."""
    structlog.contextvars.clear_contextvars()
