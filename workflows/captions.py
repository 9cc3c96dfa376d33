"""CaptionsWorkflow (child of VideoPipelineWorkflow): audio -> Whisper -> VTT/SRT -> recorded.

A failure here never fails the video: the child records captions as failed and returns a
result saying so. Only a cancel ends it early, as cancelled.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from spool.models import (
        CAPTIONS_AVAILABLE,
        CAPTIONS_FAILED,
        STEP_CANCELLED,
        STEP_DONE,
        STEP_FAILED,
        STEP_PENDING,
        STEP_RUNNING,
        CaptionsInput,
        CaptionsResult,
        ExtractAudioInput,
        ExtractAudioResult,
        RecordCaptionsInput,
        StepState,
        TranscribeInput,
        TranscribeResult,
    )
    from workflows import policies
    from workflows.errors import failure_message

CAPTIONS_STEPS = ("extract_audio", "transcribe")



@workflow.defn(name="CaptionsWorkflow")
class CaptionsWorkflow:
    def __init__(self) -> None:
        self._steps = {name: StepState(name=name) for name in CAPTIONS_STEPS}
        self._result: CaptionsResult | None = None

    @workflow.query(name="status")
    def status(self) -> CaptionsResult:
        if self._result is not None:
            return self._result
        return CaptionsResult(state=STEP_PENDING, steps=list(self._steps.values()))

    @workflow.run
    async def run(self, inp: CaptionsInput) -> CaptionsResult:
        current = "extract_audio"
        try:
            self._steps[current].state = STEP_RUNNING
            audio = await workflow.execute_activity(
                "video.extract_audio", ExtractAudioInput(inp.video_id, inp.source_key),
                activity_id=current, task_queue=inp.queue_captions,
                result_type=ExtractAudioResult,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                **policies.activity_options(
                    policies.captions_step_policy(policies.EXTRACT_AUDIO, inp.max_attempts)))
            self._steps[current].state = STEP_DONE
            current = "transcribe"
            self._steps[current].state = STEP_RUNNING
            text = await workflow.execute_activity(
                "video.transcribe",
                TranscribeInput(inp.video_id, audio.audio_key, inp.language, audio.duration),
                activity_id=current, task_queue=inp.queue_captions,
                result_type=TranscribeResult,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                **policies.activity_options(
                    policies.captions_step_policy(policies.TRANSCRIBE_AUDIO, inp.max_attempts)))
            self._steps[current].state = STEP_DONE
            result = CaptionsResult(
                state=CAPTIONS_AVAILABLE, language=text.language, vtt_key=text.vtt_key,
                srt_key=text.srt_key, transcript_key=text.transcript_key,
                segment_count=text.segment_count, excerpt=text.excerpt,
                steps=list(self._steps.values()))
            record = RecordCaptionsInput(inp.video_id, CAPTIONS_AVAILABLE, text.language, text)
        except ActivityError as err:
            if is_cancelled_exception(err):
                self._steps[current].state = STEP_CANCELLED
                raise
            self._steps[current].state = STEP_FAILED
            self._steps[current].last_error = failure_message(err)
            result = CaptionsResult(state=CAPTIONS_FAILED, language=inp.language,
                                    error=failure_message(err), failed_step=current,
                                    steps=list(self._steps.values()))
            record = RecordCaptionsInput(inp.video_id, CAPTIONS_FAILED, inp.language,
                                         error=result.error)
        # "Captions available" reaches the database now, whatever the renditions are doing.
        await workflow.execute_activity(
            "video.record_captions", record, activity_id="record_captions",
            task_queue=inp.queue_pipeline, **policies.activity_options(policies.RECORD_VIDEO))
        self._result = result
        return result
