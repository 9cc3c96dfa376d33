"""Headless Chromium for the page's tests: Debian's, never a downloaded one, with the
page's errors and what its Content-Security-Policy refused collected."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from tests.support.services import service_missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.asynccontextmanager
async def chromium_page(pw, errors: list[str]):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        service_missing(f"{CHROMIUM} not installed")
    try:
        # Autoplay allowed: the test presses play through script, as a click would.
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
    except Exception as exc:  # noqa: BLE001
        service_missing(f"chromium did not start: {exc}")
    try:
        page = await browser.new_page(viewport={"width": 1100, "height": 1100})
        page.on("pageerror", lambda e: errors.append(str(e)))
        # What the page's Content-Security-Policy refused (the console's only word of it).
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and ("Content Security Policy" in m.text)
                else None
            ),
        )
        yield page
    finally:
        await browser.close()


def playwright_api():
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError as exc:
        service_missing(f"playwright not installed: {exc}")
    return async_playwright, expect
