"""Dataclasses that cross the Temporal boundary (workflow and activity inputs and results).

One dataclass in, one dataclass out: fields may be added (with defaults) without breaking
running histories. Nothing here does I/O, so workflow code may import it freely.
"""

from spool.models.blog import *  # noqa: F403
from spool.models.captions import *  # noqa: F403
from spool.models.common import *  # noqa: F403
from spool.models.lifecycle import *  # noqa: F403
from spool.models.live import *  # noqa: F403
from spool.models.posts import *  # noqa: F403
from spool.models.video import *  # noqa: F403
