"""CPU time of processes and of whole process trees, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """{name: CPU seconds of the process and every descendant, live or reaped} for each named
    root. A live process counts its own time plus its reaped children's (cutime/cstime), so
    a child that ends between two readings moves from one term to the other, never lost."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue  # ended while we looked
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        own[pid] = sum(int(f) for f in fields[11:15]) / TICK
    totals = {}
    for name, root in pids.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            total += own.get(pid, 0.0)
            stack.extend(children.get(pid, ()))
        totals[name] = total
    return totals
