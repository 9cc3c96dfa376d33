"""The service layer under the HTTP API and the command line: start, cancel and status of
jobs, answered as typed views (spool/service/views.py) built in one place.

- ``jobs``: the one id policy of every pipeline's start, cancel, a job's status;
- ``videos``: a video's record merged with its job's live status, its media's keys;
- ``posts``: publish, unpublish, delete, schedule, read, list, search, authors;
- ``post_ops``: the operations on a post, handed to its own workflow.
"""

from spool.service.jobs import JobEnded, JobNotFound
from spool.service.posts import IndexUnavailable, PostService
from spool.service.videos import VideoService

__all__ = ["IndexUnavailable", "JobEnded", "JobNotFound", "PostService", "VideoService"]
