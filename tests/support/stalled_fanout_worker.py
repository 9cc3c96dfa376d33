"""worker.py whose log notifier stops for good at one follower (a test hook).

For tests that must hold a blog job in the middle of its fan-out, its first pages delivered
and heartbeated, until they kill the worker: a delivery that names the follower in
SPOOL_TEST_STALL_ON never returns (a retried attempt resumes from the heartbeated cursor and
stops there again). Usage: python -m tests.support.stalled_fanout_worker ARGS (the same
arguments as worker.py).
"""

from __future__ import annotations

import os
import sys
import threading

import worker
from spool.notify import LogNotifier
from spool.temporal import exit_process


def stalling(deliver_batch):
    stall_on = os.environ["SPOOL_TEST_STALL_ON"]

    def deliver_or_stall(self, batch):
        if any(notification.recipient == stall_on for notification in batch):
            threading.Event().wait()  # until the test kills the process
        return deliver_batch(self, batch)

    return deliver_or_stall


if __name__ == "__main__":
    LogNotifier.deliver_batch = stalling(LogNotifier.deliver_batch)
    exit_process(worker.main(sys.argv[1:]))
