"use strict";
// Spool's web page: plain JS against the /v1 API. The API key comes from /v1/config when the
// server exposes it to localhost (SPOOL_API_EXPOSE_KEY_TO_LOCALHOST=true), else from the user
// ("API key…"), kept in localStorage.
const $ = (id) => document.getElementById(id);
let apiKey = localStorage.getItem("spool.apiKey") || null;
let pollTimer = null;
let currentVideo = null;
let shownRendition = null;

const STATE_WORDS = {
  processing: "Processing…", ready: "Ready", ready_with_errors: "Ready, with some errors",
  failed: "Failed", cancelled: "Cancelled",
};
const STEP_WORDS = {
  pending: "waiting", running: "running", retrying: "retrying", done: "done",
  failed: "failed", skipped: "skipped", cancelled: "cancelled",
};

function authHeaders() { return apiKey ? { Authorization: "Bearer " + apiKey } : {}; }
function showKeyState() { $("keystate").textContent = apiKey ? "API key set" : "no API key"; }

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { ...authHeaders(), ...(opts.headers || {}) } });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) {
    const err = body && body.error ? body.error : { message: res.statusText };
    throw new Error(err.message + (err.field ? ` (field: ${err.field})` : ""));
  }
  return body;
}

async function loadConfig() {
  try {
    const cfg = await api("/v1/config");
    if (cfg.api_key) { apiKey = cfg.api_key; }
  } catch (_) { /* the page still works for reads */ }
  showKeyState();
}

$("setkey").onclick = () => {
  const k = prompt("API key for uploads and publishing:", apiKey || "");
  if (k !== null) { apiKey = k.trim() || null; localStorage.setItem("spool.apiKey", apiKey || ""); }
  showKeyState();
};

// --- upload --------------------------------------------------------------------------------
$("upload-form").onsubmit = (ev) => {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("captions", $("captions").checked ? "true" : "false");
  if ($("renditions").value.trim()) form.append("renditions", $("renditions").value.trim());
  form.append("file", file);
  const xhr = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false; bar.value = 0;
  $("upload-btn").disabled = true;
  $("upload-msg").className = "msg";
  $("upload-msg").textContent = "Uploading…";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      bar.value = Math.round((e.loaded / e.total) * 100);
      $("upload-msg").textContent = `Uploading… ${bar.value}%`;
    }
  };
  xhr.onload = () => {
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
      $("upload-msg").className = "msg error";
      $("upload-msg").textContent = "Upload refused: " + e.message;
    }
  };
  xhr.onerror = () => {
    $("upload-btn").disabled = false;
    $("upload-msg").className = "msg error";
    $("upload-msg").textContent = "Upload failed: the connection was lost.";
  };
  xhr.open("POST", "/v1/videos");
  if (apiKey) xhr.setRequestHeader("Authorization", "Bearer " + apiKey);
  xhr.send(form);
};

// --- one video -----------------------------------------------------------------------------
function openVideo(id) {
  currentVideo = id;
  shownRendition = null;
  $("job-card").hidden = false;
  $("job-id").textContent = id;
  $("player-box").hidden = true;
  $("player").removeAttribute("src");
  for (const t of [...$("player").querySelectorAll("track")]) t.remove();
  $("captions-btn").disabled = true;
  $("captions-btn").classList.remove("on");
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
  render(v);
  const done = ["ready", "ready_with_errors", "failed", "cancelled"].includes(v.state);
  const captionsPending = v.captions && ["pending", null, undefined].includes(v.captions.state)
    && v.state !== "failed" && v.state !== "cancelled";
  if (!done || captionsPending) pollTimer = setTimeout(poll, 1000);
  else refreshList();
}

function render(v) {
  const st = $("job-state");
  st.textContent = STATE_WORDS[v.state] || v.state;
  st.className = "state " + (v.state.startsWith("ready") ? "ready" : v.state);
  st.dataset.state = v.state;
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
  const errs = Object.entries(v.errors || {}).map(([k, m]) => `${k}: ${m}`);
  if (v.error && !errs.length) errs.push(v.error);
  $("job-error").textContent = errs.length ? "Problems: " + errs.join("; ") : "";
  if (v.renditions && v.renditions.length && v.state !== "processing") showPlayer(v);
  const cap = v.captions || {};
  const btn = $("captions-btn");
  if (cap.vtt_url) {
    btn.disabled = false;
    $("captions-note").textContent = "";
    btn.dataset.src = cap.vtt_url;
  } else {
    btn.disabled = true;
    $("captions-note").textContent = {
      pending: "Captions are being made…", failed: "Captions could not be made.",
      skipped: "No audio, so no captions.", disabled: "Captions were not requested.",
      cancelled: "Captions were cancelled.",
    }[cap.state] || "";
  }
}

function showPlayer(v) {
  const box = $("player-box");
  const sel = $("rendition");
  const names = v.renditions.map((r) => r.name).join(",");
  if (sel.dataset.names !== names) {
    sel.innerHTML = "";
    for (const r of v.renditions) {
      const o = document.createElement("option");
      o.value = r.url; o.textContent = `${r.name} (${r.width}×${r.height})`;
      sel.appendChild(o);
    }
    sel.dataset.names = names;
  }
  if (v.poster_url) $("player").poster = v.poster_url;
  if (box.hidden || !shownRendition) {
    box.hidden = false;
    setRendition(sel.value);
  }
}

function setRendition(url) {
  const p = $("player");
  const t = p.currentTime || 0;
  shownRendition = url;
  p.src = url;
  p.addEventListener("loadedmetadata", () => { if (t) p.currentTime = t; }, { once: true });
}

$("rendition").onchange = (e) => setRendition(e.target.value);

$("captions-btn").onclick = () => {
  const p = $("player");
  const btn = $("captions-btn");
  let track = p.querySelector("track");
  if (!track) {
    track = document.createElement("track");
    track.kind = "captions"; track.label = "Captions"; track.srclang = "en";
    track.src = btn.dataset.src; track.default = true;
    p.appendChild(track);
  }
  const tt = p.textTracks[0];
  const on = !btn.classList.contains("on");
  tt.mode = on ? "showing" : "hidden";
  btn.classList.toggle("on", on);
  btn.textContent = on ? "Captions on" : "Captions";
};

// --- list ----------------------------------------------------------------------------------
async function refreshList() {
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

// --- blog ----------------------------------------------------------------------------------
$("post-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const post = {
    post_id: $("post-id").value.trim(), author_id: $("post-author").value.trim(),
    version: parseInt($("post-version").value, 10) || 1,
    title: $("post-title").value, body: $("post-body").value,
  };
  try {
    const r = await api("/v1/posts", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(post),
    });
    $("post-msg").className = "msg";
    $("post-msg").textContent = `Publishing (job ${r.job_id}).`;
  } catch (e) {
    $("post-msg").className = "msg error";
    $("post-msg").textContent = "Not published: " + e.message;
  }
};

$("search-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const list = $("search-results");
  list.innerHTML = "";
  try {
    const r = await api("/v1/posts/search?q=" + encodeURIComponent($("search-q").value));
    if (!r.results.length) list.innerHTML = "<li class='muted'>No posts found.</li>";
    for (const p of r.results) {
      const li = document.createElement("li");
      li.textContent = `${p.title} — ${p.author_id}`;
      list.appendChild(li);
    }
  } catch (e) { list.innerHTML = ""; list.textContent = "Search failed: " + e.message; }
};

$("author-form").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("/v1/authors/" + encodeURIComponent($("author-id").value.trim()));
    $("author-msg").textContent = `${r.author_id} has published ${r.post_count} post(s).`;
  } catch (e) { $("author-msg").textContent = "Lookup failed: " + e.message; }
};

loadConfig().then(refreshList);
setInterval(refreshList, 5000);
