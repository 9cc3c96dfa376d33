"""CaptionsWorkflow (child of VideoPipelineWorkflow): audio -> Whisper -> VTT/SRT -> recorded.

A failure here never fails the video: the child records captions as failed and returns a
result saying so. Only a cancel ends it early, as cancelled.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import VideoActivities
    from spool.models import (
        CaptionsInput,
        CaptionsResult,
        CaptionsState,
        ExtractAudioInput,
        RecordCaptionsInput,
        TranscribeInput,
    )
    from workflows.steps import Outcome, Step, StepBook

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
EXTRACT_AUDIO = Step("extract_audio", VideoActivities.extract_audio, policies.EXTRACT_AUDIO)
TRANSCRIBE = Step("transcribe", VideoActivities.transcribe, policies.TRANSCRIBE)
RECORD_CAPTIONS = Step("record_captions", VideoActivities.record_captions, policies.RECORD_CAPTIONS)
# The steps the parent shows for this child.
CAPTIONS_STEPS = (EXTRACT_AUDIO.name, TRANSCRIBE.name)


def bounded(step: Step, inp: CaptionsInput) -> Step:
    """The step with the job's own bound on attempts, if it has one."""
    return step.with_policy(policies.captions_step_policy(step.policy, inp.max_attempts))


@workflow.defn(name="CaptionsWorkflow")
class CaptionsWorkflow:
    def __init__(self) -> None:
        self._steps = StepBook(CAPTIONS_STEPS)
        self._result: CaptionsResult | None = None

    @workflow.query(name="status")
    def status(self) -> CaptionsResult:
        if self._result is not None:
            return self._result
        return CaptionsResult(state=CaptionsState.PENDING, steps=self._steps.states())

    @workflow.run
    async def run(self, inp: CaptionsInput) -> CaptionsResult:
        last, outcome = (
            EXTRACT_AUDIO,
            await self._steps.run(
                bounded(EXTRACT_AUDIO, inp),
                ExtractAudioInput(inp.video_id, inp.source_key),
                queue=inp.queue_captions,
            ),
        )
        if outcome.ok:
            audio = outcome.value
            last, outcome = (
                TRANSCRIBE,
                await self._steps.run(
                    bounded(TRANSCRIBE, inp),
                    TranscribeInput(inp.video_id, audio.audio_key, inp.language, audio.duration),
                    queue=inp.queue_captions,
                ),
            )
        if outcome.cancelled:
            raise asyncio.CancelledError()
        result, record = self._outcome(inp, last, outcome)
        # "Captions available" reaches the database now, whatever the renditions are doing.
        await RECORD_CAPTIONS.execute(record, queue=inp.queue_pipeline)
        self._result = result
        return result

    def _outcome(
        self, inp: CaptionsInput, last: Step, outcome: Outcome
    ) -> tuple[CaptionsResult, RecordCaptionsInput]:
        """The child's result and what to record, from the last step run and its outcome."""
        if not outcome.ok:
            result = CaptionsResult(
                state=CaptionsState.FAILED,
                language=inp.language,
                error=outcome.error,
                failed_step=last.name,
                steps=self._steps.states(),
            )
            return result, RecordCaptionsInput(
                inp.video_id, CaptionsState.FAILED, inp.language, error=result.error
            )
        t = outcome.value
        result = CaptionsResult(
            state=CaptionsState.AVAILABLE,
            language=t.language,
            vtt_key=t.vtt_key,
            srt_key=t.srt_key,
            transcript_key=t.transcript_key,
            segment_count=t.segment_count,
            excerpt=t.excerpt,
            steps=self._steps.states(),
        )
        return result, RecordCaptionsInput(inp.video_id, CaptionsState.AVAILABLE, t.language, t)
