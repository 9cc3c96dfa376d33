// The open video (polled until it is done, then while its read grant needs renewing), the
// list of videos, and the page address that opens one (#video=ID).
import { api } from "./api.js";
import { $ } from "./dom.js";
import { GRANT_REFRESH_MS, currentVideo, grantBase, noteGrant, setCurrentVideo } from "./grants.js";
import { resetPlayer } from "./player.js";
import { STATE_WORDS, render } from "./status.js";

let pollTimer = null;

export function openVideo(id) {
  setCurrentVideo(id);
  if (location.hash !== "#video=" + id) history.replaceState(null, "", "#video=" + id);
  $("job-card").hidden = false;
  $("job-id").textContent = id;
  resetPlayer();
  $("job-error").textContent = "";
  if (pollTimer) clearTimeout(pollTimer);
  poll();
}

async function poll() {
  const id = currentVideo;
  let v;
  try { v = await api(`/v1/videos/${id}`); } catch (e) {
    $("job-error").textContent = "Could not read the job: " + e.message;
    pollTimer = setTimeout(poll, 2000);
    return;
  }
  if (id !== currentVideo) return;
  noteGrant(v);
  render(v);
  const done = ["ready", "ready_with_errors", "failed", "cancelled"].includes(v.state);
  const captionsPending = v.captions && ["pending", null, undefined].includes(v.captions.state)
    && v.state !== "failed" && v.state !== "cancelled";
  if (!done || captionsPending) pollTimer = setTimeout(poll, 1000);
  else {
    refreshList();
    // Its media URLs carry a read grant that expires: read the status again in time.
    if (grantBase) pollTimer = setTimeout(poll, GRANT_REFRESH_MS);
  }
}

export async function refreshList() {
  let data;
  try { data = await api("/v1/videos?limit=20"); } catch (_) { return; }
  const tbody = $("jobs").querySelector("tbody");
  tbody.innerHTML = "";
  for (const v of data.videos) {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td><a></a></td><td></td><td></td><td></td>";
    const a = tr.querySelector("a");
    a.textContent = v.video_id; a.onclick = () => openVideo(v.video_id);
    tr.children[1].textContent = STATE_WORDS[v.state] || v.state;
    tr.children[2].textContent = v.captions_state || "";
    tr.children[3].textContent = v.created_at ? new Date(v.created_at).toLocaleString() : "";
    tbody.appendChild(tr);
  }
}

// Delete: the API answers 202 and the video is gone for it from then on (its files and
// records follow); the page stops showing it at once.
export function wireDelete() {
  $("delete-btn").onclick = async () => {
    const id = currentVideo;
    if (!id || !confirm(`Delete video ${id}? Its files and records are removed for good.`)) return;
    try { await api(`/v1/videos/${id}`, { method: "DELETE" }); } catch (e) {
      $("job-error").textContent = "Could not delete: " + e.message;
      return;
    }
    if (pollTimer) clearTimeout(pollTimer);
    setCurrentVideo(null);
    resetPlayer();
    $("job-card").hidden = true;
    history.replaceState(null, "", location.pathname);
    refreshList();
  };
}

// A job page's address (#video=ID) opens that video again after a reload or from a link.
export function videoInAddress() {
  const m = location.hash.match(/^#video=([A-Za-z0-9_-]+)$/);
  if (m && m[1] !== currentVideo) openVideo(m[1]);
}
