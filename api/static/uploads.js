// The upload form: the file goes up with a progress bar (XMLHttpRequest: fetch reports no
// upload progress), then its video opens.
import { authHeaders } from "./api.js";
import { $ } from "./dom.js";
import { openVideo, refreshList } from "./videos.js";

function uploadForm(file) {
  const form = new FormData();
  form.append("captions", $("captions").checked ? "true" : "false");
  if ($("renditions").value.trim()) form.append("renditions", $("renditions").value.trim());
  form.append("file", file);
  return form;
}

function say(text, error = false) {
  $("upload-msg").className = error ? "msg error" : "msg";
  $("upload-msg").textContent = text;
}

function onUploaded(xhr, bar) {
  $("upload-btn").disabled = false;
  let body = {};
  try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
  if (xhr.status === 202) {
    bar.value = 100;
    $("upload-msg").textContent = "Uploaded. The video is being processed.";
    openVideo(body.video_id);
    refreshList();
  } else {
    const e = body.error || { message: `HTTP ${xhr.status}` };
    say("Upload refused: " + e.message, true);
  }
}

function upload(ev) {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = uploadForm(file);
  const xhr = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false; bar.value = 0;
  $("upload-btn").disabled = true;
  say("Uploading…");
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      bar.value = Math.round((e.loaded / e.total) * 100);
      $("upload-msg").textContent = `Uploading… ${bar.value}%`;
    }
  };
  xhr.onload = () => onUploaded(xhr, bar);
  xhr.onerror = () => {
    $("upload-btn").disabled = false;
    say("Upload failed: the connection was lost.", true);
  };
  xhr.open("POST", "/v1/videos");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  xhr.send(form);
}

export function wireUploads() { $("upload-form").onsubmit = upload; }
