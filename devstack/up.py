"""`make up`: run the embedded stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from devstack.proc import StackError
from devstack.stack import API_KEY_FILE, EmbeddedStack, stack_api_key
from spool.config import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--no-api", action="store_true", help="only Temporal and the worker")
    parser.add_argument("--mail-port", type=int, default=1025, help="Mailpit's SMTP port")
    parser.add_argument("--mail-ui-port", type=int, default=8025, help="Mailpit's web UI")
    parser.add_argument("--no-mail", action="store_true", help="no Mailpit: no email")
    args = parser.parse_args(argv)
    settings = get_settings()
    stack = EmbeddedStack(
        settings,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        with_api=not args.no_api,
        with_mail=not args.no_mail,
        mail_smtp_port=args.mail_port,
        mail_http_port=args.mail_ui_port,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        "starting Temporal dev server, worker and API"
        + ("" if args.no_mail else ", Mailpit (built with `go install` the first time)")
        + " ...",
        flush=True,
    )
    try:
        stack.start()
    except StackError as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"""
Spool is running (data in {settings.data_dir.resolve()}, logs in {stack.logs})
  Temporal Web UI   {stack.ui_url}
  Temporal frontend {stack.temporal_address}""")
        if stack.mail is not None:
            print(
                f"  Mailpit (emails)  {stack.mail.ui_url}   (SMTP 127.0.0.1:{stack.mail.smtp_port})"
            )
        if stack.api_available():
            data = settings.data_dir.resolve()
            print(f"""  Spool web page    {stack.api_url}/
  Spool API         {stack.api_url}/docs
  Write key         {stack_api_key(settings)}   (kept in {data / API_KEY_FILE})
  Webhook secret    {data / "webhook-secret"}""")
        print(
            """
Try:  .venv/bin/python starter.py blog samples/posts/durable-pipelines.json --wait
      .venv/bin/python starter.py video samples/speech.mp4 --wait
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stop.wait(1.0):
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(
                        f"make up: {name} exited with code {proc.returncode}; "
                        f"see {stack.logs / (name + '.log')}",
                        file=sys.stderr,
                    )
                    return 1
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
