"""worker.py with every ffmpeg input read at its native frame rate (a test hook).

For tests that must catch a transcode in the middle on a cluster host: an N-second clip then
takes at least N seconds to encode on any machine. Usage: python -m tests.support.paced_worker ARGS
(the same arguments as worker.py).
"""

from __future__ import annotations

import sys

import worker
from spool.media import tools
from spool.temporal import exit_process
from tests.support.media_clips import pace_inputs

if __name__ == "__main__":
    tools.INPUT_OPTIONS = pace_inputs()
    exit_process(worker.main(sys.argv[1:]))
