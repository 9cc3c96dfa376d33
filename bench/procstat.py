"""CPU time of processes and of whole process trees, the time their threads waited for a CPU,
and the load average, from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


def load_average() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def thread_times(pid: int) -> dict[int, tuple[int, int]]:
    """Each thread of the process: (ns on a CPU, ns ready to run but waiting for one)."""
    times: dict[int, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            on_cpu, waiting, _ = (int(x) for x in (task / "schedstat").read_text().split())
        except (OSError, ValueError):
            continue
        times[int(task.name)] = (on_cpu, waiting)
    return times


@dataclass
class CpuTime:
    """The CPU time and run-queue wait of the sampled processes' threads, each from its first
    sample to its last (a process killed meanwhile keeps what it had)."""

    first: dict[int, tuple[int, int]] = field(default_factory=dict)
    last: dict[int, tuple[int, int]] = field(default_factory=dict)

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            for tid, times in thread_times(pid).items():
                self.first.setdefault(tid, times)
                self.last[tid] = times

    def seconds(self) -> tuple[float, float]:
        """(seconds on a CPU, seconds waiting for one)."""
        on_cpu = sum(self.last[t][0] - self.first[t][0] for t in self.last)
        waiting = sum(self.last[t][1] - self.first[t][1] for t in self.last)
        return on_cpu / 1e9, waiting / 1e9
