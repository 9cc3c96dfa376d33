"""A video job's renditions, made from time chunks: plan → chunks ∥ audio track → per
rendition one package (progressive MP4 + HLS variant) ∥ storyboard → master playlist
(docs/pipelines.md, chunked encoding). Part of VideoPipelineWorkflow; workflow code, no I/O.

A chunk retries alone; a chunk that failed as a whole fails every rendition, one that lost a
rendition only that rendition (rule 5), and the others are delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import EncodeActivities, PackageActivities, ProbeActivities
    from spool.models import (
        AudioTrackInput,
        ChunkInput,
        ChunkPlan,
        ChunkResult,
        EncodingPlan,
        EncodingPlanInput,
        MasterPlaylistInput,
        PackageInput,
        ProbeResult,
        RenditionPlan,
        StepStatus,
        StoryboardInput,
        run_text,
    )
    from spool.models.failures import failure_message
    from workflows.steps import Cancelled, Done, Failed, QueueKind, Step, every_branch
    from workflows.video_state import DeliveryState, VideoJobState

from workflows.live import PLAYABLE, EncodeWaves, LivePublisher

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
# ``encode`` and ``package`` are aggregates in the status: their items (``encode-00003``,
# ``package-720p``) are the activities.
PLAN = Step("plan", ProbeActivities.plan_encoding, policies.PLAN, QueueKind.PIPELINE)
ENCODE = Step("encode", EncodeActivities.encode_chunk, policies.ENCODE, QueueKind.MEDIA)
AUDIO = Step("audio", EncodeActivities.encode_audio, policies.AUDIO, QueueKind.MEDIA)
PACKAGE = Step("package", PackageActivities.package_rendition, policies.PACKAGE, QueueKind.MEDIA)
STORYBOARD = Step(
    "storyboard", PackageActivities.make_storyboard, policies.STORYBOARD, QueueKind.MEDIA
)
HLS = Step("hls", PackageActivities.publish_hls, policies.HLS, QueueKind.PIPELINE)
# ``rendition-720p`` is a status step only: its progress is derived from its chunks, and it
# is done once its package is.
RENDITION = "rendition"
# The steps shown after the poster and the captions, in this order.
JOINING_STEPS = (PACKAGE.name, STORYBOARD.name, HLS.name)

# Late encodes (short chunks, a clip's audio track) are scheduled one workflow task after the
# early ones. A media host polling when tasks arrive is handed the first to arrive, whatever
# its priority (priority orders only what waits), and a job's tasks arrive in no set order:
# idle hosts took the two short chunks first in one bench run of three. Arriving a timer
# later, the late ones find the hosts busy and wait. The server fires the shortest timer
# after about a second (its resolution): a clip small enough to encode its long chunks faster
# than that waits for its short ones up to a second longer.
LATE_ENCODES_DELAY = 0.001  # seconds asked; the timer only has to end the workflow task


def rendition_step(name: str) -> str:
    """The status step of one rendition: ``rendition-720p``."""
    return f"{RENDITION}-{name}"


def chunk_step(chunk: ChunkPlan) -> Step[ChunkInput, ChunkResult]:
    return ENCODE.at(f"{chunk.index:05d}")


def longest_chunk(plan: EncodingPlan) -> float:
    return max(c.duration for c in plan.chunks)


def chunk_shares(chunks: list[ChunkPlan]) -> dict[str, float]:
    """Each chunk's activity id and its share of the source, in percentage points."""
    total = sum(c.duration for c in chunks) or 1.0
    return {chunk_step(c).name: c.duration / total * 100.0 for c in chunks}


def encoding_steps(plan: EncodingPlan) -> list[str]:
    """The steps shown before the poster and the captions, in this order."""
    live = [PLAYABLE.name] if plan.live is not None else []
    return [ENCODE.name, *(rendition_step(r.name) for r in plan.renditions), AUDIO.name, *live]


def chunk_priority(chunk: ChunkPlan, plan: EncodingPlan) -> Priority:
    """The short first chunks of a job that plays early go first, in order; the others
    longest first (policies.encode_priority)."""
    if plan.live is not None and chunk.index < plan.live.first_chunks:
        return policies.PLAYABLE_FIRST
    return policies.encode_priority(chunk.duration, longest_chunk(plan))


def step_shares(delivery: DeliveryState) -> dict[str, dict[str, float]]:
    """What running chunks add to the encode step and each live rendition's percent."""
    if delivery.plan is None or not delivery.running_chunks:
        return {}
    running = {name: round(delivery.shares[name], 3) for name in sorted(delivery.running_chunks)}
    shares = {ENCODE.name: running}
    for rendition in delivery.plan.renditions:
        if rendition.name not in delivery.failed_renditions:
            shares[rendition_step(rendition.name)] = running
    return shares


class Delivery:
    """One job's renditions from its probed source: what they are made of is kept in the
    job's state, so the status shows it as it happens."""

    def __init__(self, job: VideoJobState, probe: ProbeResult) -> None:
        self._job = job
        self._state = job.delivery
        self._steps = job.steps
        self._probe = probe
        self._waves = EncodeWaves(False, LATE_ENCODES_DELAY)

    async def plan(self, heights: list[int]) -> EncodingPlan | None:
        """The job's plan, made once by a worker from its settings; None if it failed."""
        inp = self._job.inp
        wanted = " ".join(f"{h}p" for h in heights)
        summary = f"plan {wanted} for {run_text.duration_text(self._probe.duration)}"
        plan_input = EncodingPlanInput(inp.video_id, self._probe, heights)
        match await self._steps.run(PLAN, plan_input, summary=summary):
            case Cancelled():
                raise asyncio.CancelledError()
            case Failed(error):
                self._job.errors[PLAN.name] = error
                return None
            case Done(plan):
                self._state.plan = plan
                return plan

    async def deliver(
        self, plan: EncodingPlan, on_playable: Callable[[], None], *, first_first: bool = False
    ) -> None:
        """Every rendition, and meanwhile (a plan made to play early) the live playlists;
        ``first_first``: the first chunk scheduled before any other media task (waves)."""
        self._waves = EncodeWaves(first_first, LATE_ENCODES_DELAY)
        live = plan.live and LivePublisher(self._job, plan, self._probe, on_playable)
        await every_branch(self._make_all(plan), *([live.run()] if live else []))

    def first_out(self) -> bool:
        """Whether the job's first pictures are out, or will not be: it is playable, or its
        live playlists or its encodes have ended without."""
        return (
            self._state.playable_at is not None
            or self._steps.ended(PLAYABLE.name)
            or self._steps.ended(ENCODE.name)
        )

    async def _make_all(self, plan: EncodingPlan) -> None:
        await every_branch(self._encode_chunks(plan), self._make_audio_track(plan))
        await every_branch(self._package_all(plan), self._make_storyboard(plan))
        await self._publish_hls(plan)

    # --- chunks -------------------------------------------------------------------------

    async def _encode_chunks(self, plan: EncodingPlan) -> None:
        """Every chunk at once (the media workers' slots pace them); a chunk that failed as a
        whole after its retries fails every rendition, one that lost a rendition only that
        rendition."""
        self._state.shares = chunk_shares(plan.chunks)
        self._steps.start(ENCODE.name, *(rendition_step(r.name) for r in plan.renditions))
        outcomes = await every_branch(
            *(self._encode_chunk(c, plan, chunk_priority(c, plan)) for c in plan.chunks)
        )
        failures = [f for f in outcomes if f]
        if not failures:
            self._steps.end_unfinished(StepStatus.DONE, names=[ENCODE.name])
            return
        error = self._job.errors[ENCODE.name] = "; ".join(failures)
        self._steps.end_unfinished(StepStatus.FAILED, names=[ENCODE.name], error=error)
        for rendition in plan.renditions:
            self._fail_rendition(rendition.name, failures[0], record=False)

    async def _encode_chunk(
        self, chunk: ChunkPlan, plan: EncodingPlan, priority: Priority
    ) -> str | None:
        """One chunk of every rendition; the error it failed with as a whole, if it did."""
        inp = self._job.inp
        step = chunk_step(chunk)
        await self._waves.turn(priority, first=chunk.index == 0)
        self._state.running_chunks.add(step.name)
        try:
            made = await self._steps.execute(
                step,
                ChunkInput(
                    inp.video_id,
                    inp.source_key,
                    chunk,
                    plan.renditions,
                    plan.fps,
                    plan.segment_seconds,
                    plan.thumb_every,
                    plan.thumb_width,
                    plan.live.rendition if plan.live is not None else None,
                    urgent=self._waves.first_first and priority == policies.PLAYABLE_FIRST,
                ),
                priority=priority,
                summary=run_text.chunk_summary(
                    chunk.index,
                    len(plan.chunks),
                    chunk.start,
                    chunk.end,
                    [r.name for r in plan.renditions],
                ),
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                return None  # the job's cancel: the gather raises it once every chunk stopped
            return f"chunk {chunk.index}: {failure_message(err)}"
        finally:
            self._state.running_chunks.discard(step.name)
        self._take_chunk(plan, chunk, made, self._state.shares[step.name])
        return None

    def _take_chunk(
        self, plan: EncodingPlan, chunk: ChunkPlan, made: ChunkResult, share: float
    ) -> None:
        """A stored chunk's files, its thumbnails and the progress they stand for."""
        self._state.encoded += share
        self._steps.set_percent(ENCODE.name, self._state.encoded)
        self._state.thumbs += made.thumbs
        if made.live is not None:
            self._state.live_chunks[chunk.index] = made.live
        for rendition in plan.renditions:
            key, error = made.files.get(rendition.name), made.failed.get(rendition.name)
            if error is not None or key is None:
                self._fail_rendition(
                    rendition.name, f"chunk {chunk.index}: {error or 'no file was made'}"
                )
                continue
            self._take_rendition_chunk(rendition, chunk, key, share, len(plan.chunks))

    def _take_rendition_chunk(
        self, rendition: RenditionPlan, chunk: ChunkPlan, key: str, share: float, chunks: int
    ) -> None:
        made = self._state.chunk_keys.setdefault(rendition.name, {})
        made[chunk.index] = key
        made_share = self._state.made_share
        made_share[rendition.name] = made_share.get(rendition.name, 0.0) + share
        if rendition.name not in self._state.failed_renditions:
            self._steps.set_percent(
                rendition_step(rendition.name),
                100.0 if len(made) == chunks else made_share[rendition.name],
            )

    def _fail_rendition(self, name: str, error: str, *, record: bool = True) -> None:
        """The first error of a rendition fails it; ``record`` False when the cause is
        already in the job's errors under its own step (a whole chunk, the audio)."""
        if name in self._state.failed_renditions:
            return
        self._state.failed_renditions[name] = error
        step = rendition_step(name)
        self._steps.end_unfinished(StepStatus.FAILED, names=[step], error=error)
        if record:
            self._job.errors[step] = error

    async def _make_audio_track(self, plan: EncodingPlan) -> None:
        """The whole source's AAC track once: per-chunk audio would leave a priming gap at
        every chunk boundary."""
        inp, probe = self._job.inp, self._probe
        if not probe.has_audio:
            self._steps.skip([AUDIO.name], "no audio track")
            return
        priority = (
            policies.PLAYABLE_FIRST
            if plan.live is not None
            else policies.audio_priority(probe.duration, longest_chunk(plan))
        )
        await self._waves.turn(priority)
        made = await self._steps.run(
            AUDIO,
            AudioTrackInput(
                inp.video_id, inp.source_key, plan.audio_kbps, plan.segment_seconds, probe.duration
            ),
            progress=True,
            priority=priority,
            summary=f"audio track{run_text.SEP}{run_text.duration_text(probe.duration)} "
            f"AAC {plan.audio_kbps} kb/s",
        )
        match made:
            case Done(audio):
                self._state.audio = audio
            case Failed(error):
                # Every rendition carries this sound: none can be delivered without it.
                self._job.errors[AUDIO.name] = error
                for rendition in plan.renditions:
                    self._fail_rendition(rendition.name, f"audio: {error}", record=False)

    # --- joining --------------------------------------------------------------------------

    async def _package_all(self, plan: EncodingPlan) -> None:
        state = self._state
        ready = [
            r
            for r in plan.renditions
            if r.name not in state.failed_renditions
            and len(state.chunk_keys.get(r.name, {})) == len(plan.chunks)
            and (state.audio is not None or not self._probe.has_audio)
        ]
        if not ready:
            self._steps.skip([PACKAGE.name], "no rendition was encoded")
            return
        self._steps.start(PACKAGE.name)
        failed = [f for f in await every_branch(*(self._package(r, plan) for r in ready)) if f]
        self._steps.end_unfinished(
            StepStatus.FAILED if failed else StepStatus.DONE,
            names=[PACKAGE.name],
            error="; ".join(failed) if failed else None,
        )

    async def _package(self, rendition: RenditionPlan, plan: EncodingPlan) -> str | None:
        """Join one rendition's chunks with the audio (its progressive MP4) and cut its HLS
        variant, by stream copy; the error, if it failed."""
        inp, state = self._job.inp, self._state
        step = rendition_step(rendition.name)
        made_keys = state.chunk_keys[rendition.name]
        package = PackageInput(
            inp.video_id,
            rendition,
            [made_keys[c.index] for c in plan.chunks],
            state.audio.key if state.audio else None,
            plan.segment_seconds,
            self._probe.duration,
        )
        summary = run_text.package_summary(
            rendition.name, len(plan.chunks), package.audio_key is not None
        )
        made = await self._steps.track(
            (step,),
            self._steps.execute(PACKAGE.at(rendition.name), package, summary=summary),
            progress=True,
        )
        match made:
            case Done(packaged):
                self._job.renditions[rendition.height] = packaged.rendition
                state.variants[rendition.name] = packaged.variant
                return None
            case Failed(error):
                state.failed_renditions[rendition.name] = error
                self._job.errors[step] = error
                return f"{rendition.name}: {error}"
            case Cancelled():
                return None

    async def _make_storyboard(self, plan: EncodingPlan) -> None:
        inp, state = self._job.inp, self._state
        if plan.thumb_every is None or not state.thumbs:
            self._steps.skip([STORYBOARD.name], "no thumbnails were made")
            return
        if len(state.failed_renditions) == len(plan.renditions):
            self._steps.skip([STORYBOARD.name], "no rendition was encoded")
            return
        made = await self._steps.run(
            STORYBOARD,
            StoryboardInput(
                inp.video_id,
                plan.thumb_every,
                plan.storyboard_columns,
                plan.storyboard_rows,
                self._probe.duration,
            ),
            summary=f"storyboard{run_text.SEP}a tile every {plan.thumb_every:g} s",
        )
        match made:
            case Done(storyboard):
                state.storyboard = storyboard
            case Failed(error):
                self._job.errors[STORYBOARD.name] = error

    async def _publish_hls(self, plan: EncodingPlan) -> None:
        """The master playlist, written last: a player finds it only once every variant it
        lists is stored."""
        inp, state = self._job.inp, self._state
        variants = [state.variants[r.name] for r in plan.renditions if r.name in state.variants]
        if not variants:
            self._steps.skip([HLS.name], "no rendition was packaged")
            return
        made = await self._steps.run(
            HLS,
            MasterPlaylistInput(
                inp.video_id,
                variants,
                audio_key=state.audio.key if state.audio else None,
                segment_seconds=plan.segment_seconds,
            ),
            summary=f"master playlist{run_text.SEP}"
            + " ".join(r.name for r in plan.renditions if r.name in state.variants),
        )
        match made:
            case Done(hls):
                state.hls = hls
            case Failed(error):
                self._job.errors[HLS.name] = error
