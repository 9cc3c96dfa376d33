// The upload: resumable, with tus-js-client against /v1/uploads (tus 1.0). A dropped
// connection is retried from the bytes the server kept; a reloaded page, given the same file
// again, continues from its offset (tus-js-client keeps each file's upload URL in
// localStorage, by the file's name, type, size and date). Pause stops the request; Resume
// asks the server where it stands and goes on from there.
import { authHeaders } from "./api.js";
import { $ } from "./dom.js";
import { openVideo, refreshList } from "./videos.js";

const CHUNK_BYTES = 50 * 1024 * 1024; // one request per chunk: what a retry may resend
let current = null; // the running tus.Upload

function loadTus() {
  if (window.tus) return Promise.resolve(window.tus);
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/vendor/tus.min.js";
    s.onload = () => resolve(window.tus);
    s.onerror = () => reject(new Error("tus-js-client is not installed: run `make install`"));
    document.head.append(s);
  });
}

function metadata(file) {
  const m = {
    filename: file.name,
    filetype: file.type || "application/octet-stream",
    captions: $("captions").checked ? "true" : "false",
  };
  if ($("renditions").value.trim()) m.renditions = $("renditions").value.trim();
  return m;
}

function say(text, error = false) {
  $("upload-msg").className = error ? "msg error" : "msg";
  $("upload-msg").textContent = text;
}

function showPaused(paused) {
  $("pause-btn").dataset.paused = paused ? "true" : "false";
  $("pause-btn").textContent = paused ? "Resume" : "Pause";
}

function finished() {
  current = null;
  $("upload-btn").disabled = false;
  $("pause-btn").hidden = true;
}

function newUpload(tus, file, bar) {
  let videoId = null;
  return new tus.Upload(file, {
    endpoint: "/v1/uploads",
    headers: authHeaders(),
    metadata: metadata(file),
    chunkSize: CHUNK_BYTES,
    retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      bar.value = Math.floor((sent / total) * 100);
      say(`Uploading… ${bar.value}%`);
    },
    onAfterResponse(_req, res) {
      videoId = res.getHeader("Spool-Video-Id") || videoId;
    },
    onError(error) {
      finished();
      say("Upload failed: " + (error.message || error), true);
    },
    onSuccess() {
      finished();
      bar.value = 100;
      say("Uploaded. The video is being processed.");
      if (videoId) openVideo(videoId);
      refreshList();
    },
  });
}

async function upload(ev) {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file || current) return;
  let tus;
  try { tus = await loadTus(); } catch (e) { say(e.message, true); return; }
  const bar = $("upload-progress");
  bar.hidden = false; bar.value = 0;
  $("upload-btn").disabled = true;
  $("pause-btn").hidden = false;
  showPaused(false);
  current = newUpload(tus, file, bar);
  const previous = await current.findPreviousUploads();
  if (previous.length) {
    current.resumeFromPreviousUpload(previous[0]);
    say("Resuming where the last try stopped…");
  } else {
    say("Uploading…");
  }
  current.start();
}

function togglePause() {
  if (!current) return;
  if ($("pause-btn").dataset.paused === "true") {
    showPaused(false);
    current.start();
  } else {
    showPaused(true);
    current.abort();
    say(`Paused at ${$("upload-progress").value}%.`);
  }
}

export function wireUploads() {
  $("upload-form").onsubmit = upload;
  $("pause-btn").onclick = togglePause;
}
