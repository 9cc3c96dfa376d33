"""``python -m api``: serve the API with uvicorn on settings.api_host:api_port."""

from __future__ import annotations

import logging
import sys

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.app import create_app
from spool.config import get_settings
from spool.observability import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, default_level=logging.INFO)
    # JSON logs: uvicorn's own loggers go through the root handler, not uvicorn's formatters.
    log_config = None if settings.log_format == "json" else LOGGING_CONFIG
    try:
        app = create_app(settings)
    except ValueError as exc:
        print(f"spool api: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_level="info", log_config=log_config
    )


if __name__ == "__main__":
    main()
