"""CaptionsWorkflow (child of VideoPipelineWorkflow): audio -> Whisper -> VTT/SRT -> recorded.

A failure here never fails the video: the child records captions as failed and returns a
result saying so. Only a cancel ends it early, as cancelled.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import CaptionsActivities
    from spool.models import (
        CaptionsInput,
        CaptionsResult,
        CaptionsState,
        ExtractAudioInput,
        RecordCaptionsInput,
        TranscribeInput,
        TranscribeResult,
        run_text,
    )
    from workflows.steps import (
        Cancelled,
        Done,
        Failed,
        InputT,
        JobQueues,
        QueueKind,
        ResultT,
        Step,
        StepBook,
    )

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
EXTRACT_AUDIO = Step(
    "extract_audio", CaptionsActivities.extract_audio, policies.EXTRACT_AUDIO, QueueKind.CAPTIONS
)
TRANSCRIBE = Step(
    "transcribe", CaptionsActivities.transcribe, policies.TRANSCRIBE, QueueKind.CAPTIONS
)
RECORD_CAPTIONS = Step(
    "record_captions",
    CaptionsActivities.record_captions,
    policies.RECORD_CAPTIONS,
    QueueKind.PIPELINE,
)
# The steps the parent shows for this child.
CAPTIONS_STEPS = (EXTRACT_AUDIO.name, TRANSCRIBE.name)


def bounded(step: Step[InputT, ResultT], inp: CaptionsInput) -> Step[InputT, ResultT]:
    """The step with the job's own bound on attempts, if it has one."""
    return step.with_policy(policies.captions_step_policy(step.policy, inp.max_attempts))


@workflow.defn(name="CaptionsWorkflow")
class CaptionsWorkflow:
    @workflow.init
    def __init__(self, inp: CaptionsInput) -> None:
        queues = JobQueues(pipeline=inp.queue_pipeline, captions=inp.queue_captions)
        self._steps = StepBook(CAPTIONS_STEPS, queues=queues)
        self._result: CaptionsResult | None = None
        self._inp = inp
        self._steps.on_change = self._show_details

    @workflow.query(name="status")
    def status(self) -> CaptionsResult:
        if self._result is not None:
            return self._result
        return CaptionsResult(state=CaptionsState.PENDING, steps=self._steps.states())

    def _show_details(self) -> None:
        """The UI's current details: the status query's facts, kept as they change."""
        details = run_text.captions_job_details(
            self._inp.video_id, self._inp.language, self.status()
        )
        workflow.set_current_details(details)

    @workflow.run
    async def run(self, inp: CaptionsInput) -> CaptionsResult:
        self._show_details()
        last: str = EXTRACT_AUDIO.name
        outcome = await self._steps.run(
            bounded(EXTRACT_AUDIO, inp),
            ExtractAudioInput(inp.video_id, inp.source_key),
            summary=f"extract the audio of {inp.source_key}",
        )
        if isinstance(outcome, Done):
            audio = outcome.value
            last = TRANSCRIBE.name
            outcome = await self._steps.run(
                bounded(TRANSCRIBE, inp),
                TranscribeInput(inp.video_id, audio.audio_key, inp.language, audio.duration),
                summary=run_text.transcribe_summary(audio.duration, inp.language),
            )
        match outcome:
            case Cancelled():
                raise asyncio.CancelledError()
            case Failed(error):
                result = self._failed(inp, last, error)
                record = RecordCaptionsInput(
                    inp.video_id, CaptionsState.FAILED, inp.language, error=error
                )
            case Done(transcript):
                result = self._transcribed(transcript)
                record = RecordCaptionsInput(
                    inp.video_id, result.state, transcript.language, transcript
                )
        # "Captions available" reaches the database now, whatever the renditions are doing.
        await self._steps.execute(
            RECORD_CAPTIONS, record, summary=f"record captions: {record.state}"
        )
        self._result = result
        self._show_details()
        return result

    def _failed(self, inp: CaptionsInput, step: str, error: str) -> CaptionsResult:
        return CaptionsResult(
            state=CaptionsState.FAILED,
            language=inp.language,
            error=error,
            failed_step=step,
            steps=self._steps.states(),
        )

    def _transcribed(self, t: TranscribeResult) -> CaptionsResult:
        """AVAILABLE with the captions' keys, or NONE when no speech was found in the audio
        (the transcript, empty, is still stored)."""
        return CaptionsResult(
            state=CaptionsState.AVAILABLE if t.segment_count else CaptionsState.NONE,
            language=t.language,
            vtt_key=t.vtt_key,
            srt_key=t.srt_key,
            transcript_key=t.transcript_key,
            segment_count=t.segment_count,
            excerpt=t.excerpt,
            steps=self._steps.states(),
        )
