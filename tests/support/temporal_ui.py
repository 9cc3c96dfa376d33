"""The Temporal Web UI of a dev server of the test's own, read in headless Chromium as an
operator reads it: the workflow list filtered by ``SpoolSummary``, a run's timeline and its
User Metadata tab (summary, details, current details, each rendered in an iframe)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import quote

import httpx

from devstack.proc import free_port
from devstack.temporal import DevServer
from tests.support.services import started

NAMESPACE = "default"
METADATA_FRAMES = {
    "summary": "#user-metadata-summary",
    "details": "#user-metadata-details",
    "current": "#user-metadata-current-details",
}


def dev_server_with_ui(log_path: Path) -> contextlib.AbstractContextManager[DevServer]:
    """A dev server with its Web UI on free ports, stopped on exit."""
    server = DevServer(port=free_port(), ui_port=free_port(), db_filename=None, log_path=log_path)
    return started(server, "Temporal dev server with its UI")


async def ui_answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def list_url(base: str, query: str) -> str:
    return f"{base}/namespaces/{NAMESPACE}/workflows?query={quote(query)}"


def workflow_url(base: str, workflow_id: str) -> str:
    return f"{base}/namespaces/{NAMESPACE}/workflows/{quote(workflow_id, safe='')}"


async def show_summary_column(page, name: str = "SpoolSummary") -> None:
    """Put a search attribute's column beside the workflow ids, in place of the run ids, as
    an operator does once (the UI keeps it in the browser)."""
    await page.click("[data-testid=workflows-summary-table-configuration-button]")
    item = "[data-testid='orderable-list-item-{}-{}-button']"
    remove = page.locator(item.format("Run ID", "remove"))
    if await remove.count():
        await remove.click()
    add = page.locator(item.format(name, "add"))
    if await add.count():
        await add.click()
        for _ in ("End", "Start", "Type"):
            await page.click(item.format(name, "move-up"))
    await page.click("[data-testid=drawer-close-button]")


async def open_tab(page, name: str) -> None:
    await page.get_by_text(name, exact=True).first.click()


def metadata_frame(page, which: str):
    """The body of one User Metadata panel: "summary", "details" or "current"."""
    return page.frame_locator(METADATA_FRAMES[which]).locator("body")
