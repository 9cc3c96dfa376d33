// A video's status, shown: its state, a bar per step, its problems, its captions, and the
// player once it has something to play.
import { $ } from "./dom.js";
import { showPlayer } from "./player.js";

export const STATE_WORDS = {
  processing: "Processing…", ready: "Ready", ready_with_errors: "Ready, with some errors",
  failed: "Failed", cancelled: "Cancelled",
};
const STEP_WORDS = {
  pending: "waiting", running: "running", retrying: "retrying", done: "done",
  failed: "failed", skipped: "skipped", cancelled: "cancelled",
};
const CAPTIONS_NOTES = {
  pending: "Captions are being made…", failed: "Captions could not be made.",
  skipped: "No audio, so no captions.", disabled: "Captions were not requested.",
  cancelled: "Captions were cancelled.", none: "No speech detected.",
};

export function render(v) {
  const st = $("job-state");
  st.textContent = STATE_WORDS[v.state] || v.state;
  st.className = "state " + (v.state.startsWith("ready") ? "ready" : v.state);
  st.dataset.state = v.state;
  renderSteps(v);
  const errs = Object.entries(v.errors || {}).map(([k, m]) => `${k}: ${m}`);
  if (v.error && !errs.length) errs.push(v.error);
  $("job-error").textContent = errs.length ? "Problems: " + errs.join("; ") : "";
  // A job still running plays its live playlist as soon as the status has one.
  const done = v.state !== "processing" && (v.hls_url || (v.renditions && v.renditions.length));
  if (done || v.playable_url) showPlayer(v);
  renderCaptions(v.captions || {});
}

function renderSteps(v) {
  const steps = $("steps");
  steps.innerHTML = "";
  if (v.state === "processing" && !(v.steps || []).length) {
    steps.innerHTML = "<p class='muted'>Queued: waiting for a worker to pick the job up.</p>";
  }
  for (const s of v.steps || []) {
    const row = document.createElement("div");
    row.className = "step";
    const pct = s.state === "done" ? 100 : (s.percent || 0);
    let word = STEP_WORDS[s.state] || s.state;
    if (s.state === "retrying") word += ` (attempt ${s.attempt})`;
    row.innerHTML = `<span></span><progress max="100"></progress><span class="muted"></span>`;
    row.children[0].textContent = s.name;
    row.children[1].value = pct;
    row.children[2].textContent = word + (s.state === "running" && s.percent ? ` ${Math.round(s.percent)}%` : "");
    if (s.last_error) row.title = s.last_error;
    steps.appendChild(row);
  }
}

function renderCaptions(cap) {
  const btn = $("captions-btn");
  if (cap.vtt_url) {
    btn.disabled = false;
    $("captions-note").textContent = "";
    btn.dataset.src = cap.vtt_url;
  } else {
    btn.disabled = true;
    $("captions-note").textContent = CAPTIONS_NOTES[cap.state] || "";
  }
}
