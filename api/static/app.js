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
// A video plays as HLS with adaptive bitrate when the status has `hls_url`, through hls.js
// (Media Source Extensions: a quality menu, and HLS where the browser has none of its own, as
// in Firefox), else from the progressive MP4 of the chosen rendition (videos made before HLS).
let hls = null;            // the hls.js player of the open video, while it plays HLS
let hlsScript = null;      // the promise of hls.js, loaded once, when a video first needs it
let storyboard = [];       // the open video's thumbnail cues: {start, end, url, x, y, w, h}

function openVideo(id) {
  currentVideo = id;
  shownRendition = null;
  if (location.hash !== "#video=" + id) history.replaceState(null, "", "#video=" + id);
  $("job-card").hidden = false;
  $("job-id").textContent = id;
  resetPlayer();
  $("job-error").textContent = "";
  if (pollTimer) clearTimeout(pollTimer);
  poll();
}

function resetPlayer() {
  if (hls) { hls.destroy(); hls = null; }
  grantBase = null;
  storyboard = [];
  const p = $("player");
  $("player-box").hidden = true;
  p.removeAttribute("src");
  p.removeAttribute("poster");
  p.load();
  for (const t of [...p.querySelectorAll("track")]) t.remove();
  $("rendition").innerHTML = "";
  $("stream-note").textContent = "";
  $("storyboard-preview").hidden = true;
  $("captions-btn").disabled = true;
  $("captions-btn").classList.remove("on");
  $("captions-btn").textContent = "Captions";
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

// --- read grants --------------------------------------------------------------------------
// With private reads a status gives media URLs under a read grant (/v1/videos/{id}/grant/…/)
// that lasts 12 hours or more. While a video is open its status is read again every 20
// minutes, and hls.js fetches every playlist and segment under the newest grant. A request
// refused all the same (the computer slept past the expiry) reads the status at once: hls.js
// then loads again, a progressive rendition goes on from the same time.
const GRANT_REFRESH_MS = 20 * 60 * 1000;
const GRANT_PATH = /\/v1\/videos\/[^/]+\/grant\/[^/]+\//;
let grantBase = null;  // "/v1/videos/{id}/grant/{grant}/" of the open video's latest status
let renewing = null;   // the status being read again for a new grant, while it is

function noteGrant(v) {
  const url = [v.hls_url, v.poster_url, ...(v.renditions || []).map((r) => r.url)]
    .find((u) => u && GRANT_PATH.test(u));
  grantBase = url ? url.match(GRANT_PATH)[0] : null;
}

function withNewestGrant(url) {
  return grantBase ? url.replace(GRANT_PATH, grantBase) : url;
}

async function renewGrant() {
  // The open video's status again; true when it brought a newer grant.
  const id = currentVideo, before = grantBase;
  try {
    const v = await api(`/v1/videos/${id}`);
    if (id === currentVideo) noteGrant(v);
  } catch (_) { return false; }
  return id === currentVideo && grantBase !== before;
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
  const playable = v.hls_url || (v.renditions && v.renditions.length);
  if (playable && v.state !== "processing") showPlayer(v);
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
  if (v.poster_url && !$("player").poster) $("player").poster = v.poster_url;
  if (!box.hidden && shownRendition) return;  // already playing: polls change nothing
  box.hidden = false;
  if (v.storyboard_url) loadStoryboard(v.storyboard_url);
  if (v.hls_url) playHls(v);
  else playProgressive(v);
}

// Progressive MP4: one rendition at a time, chosen in the menu.
function playProgressive(v) {
  const sel = $("rendition");
  $("rendition-label").textContent = "Rendition";
  sel.dataset.mode = "mp4";
  sel.innerHTML = "";
  for (const r of v.renditions || []) {
    const o = document.createElement("option");
    o.value = r.url; o.textContent = `${r.name} (${r.width}×${r.height})`;
    sel.appendChild(o);
  }
  if (sel.value) setRendition(sel.value);
}

function setRendition(url) {
  const p = $("player");
  const t = p.currentTime || 0;
  shownRendition = withNewestGrant(url);
  p.src = shownRendition;
  p.addEventListener("loadedmetadata", () => { if (t) p.currentTime = t; }, { once: true });
}

function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsScript) {
    hlsScript = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/vendor/hls.min.js";
      s.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error("no Hls")));
      s.onerror = () => { hlsScript = null; reject(new Error("hls.js is not installed")); };
      document.head.appendChild(s);
    });
  }
  return hlsScript;
}

async function playHls(v) {
  const id = currentVideo;
  const p = $("player");
  shownRendition = v.hls_url;
  let Hls = null;
  try { Hls = await loadHlsJs(); } catch (_) { Hls = null; }
  if (id !== currentVideo) return;
  if (Hls && Hls.isSupported()) {
    hls = new Hls({ xhrSetup: (xhr, url) => xhr.open("GET", withNewestGrant(url), true) });
    hls.on(Hls.Events.MANIFEST_PARSED, () => fillLevels());
    hls.on(Hls.Events.LEVEL_SWITCHED, () => showAutoLevel());
    hls.on(Hls.Events.ERROR, (_e, data) => onHlsError(v, data));
    hls.loadSource(v.hls_url);
    hls.attachMedia(p);
    return;
  }
  const missing = Hls ? "" : "The quality menu needs hls.js, which this server does not have "
    + "(run `make install`): ";
  if (p.canPlayType("application/vnd.apple.mpegurl")) {
    // The browser's own HLS (Safari, recent Chromium) picks the quality: the menu has only Auto.
    $("stream-note").textContent = missing && missing + "this browser's own HLS player picks "
      + "the quality.";
    fillQualityMenu([]);
    p.src = v.hls_url;
  } else {
    $("stream-note").textContent = (missing || "This browser cannot play HLS: ")
      + "playing one rendition at a time instead.";
    playProgressive(v);
  }
}

function onHlsError(v, data) {
  if (data.type === "networkError" && data.response && data.response.code === 401
      && grantBase) {
    // A refused grant: read the status again, unless a newer grant than the one refused is
    // known already. hls.js's next try of the load takes it (xhrSetup); after its last,
    // loading starts again.
    const player = hls;
    const sentUnder = (data.networkDetails && data.networkDetails.responseURL) || "";
    let newer = Promise.resolve(true);
    if (sentUnder.includes(grantBase)) {
      newer = renewing = renewing || renewGrant().finally(() => { renewing = null; });
    }
    newer.then((renewed) => {
      if (player !== hls || !data.fatal) return;
      if (renewed) hls.startLoad(); else onFatalHlsError(v, data);
    });
    return;
  }
  if (data.fatal) onFatalHlsError(v, data);  // else hls.js retries and switches on its own
}

function onFatalHlsError(v, data) {
  if (data.type === "mediaError") { hls.recoverMediaError(); return; }
  hls.destroy(); hls = null;
  $("stream-note").textContent = `Adaptive streaming failed (${data.details}): `
    + "playing one rendition at a time instead.";
  if (v.renditions && v.renditions.length) playProgressive(v);
}

// The quality menu: Auto (adaptive) and each level of the master playlist, highest first.
function fillLevels() {
  const levels = hls.levels.map((l, i) => ({ index: i, width: l.width, height: l.height,
    bitrate: l.bitrate }));
  levels.sort((a, b) => b.height - a.height || b.bitrate - a.bitrate);
  fillQualityMenu(levels);
}

function fillQualityMenu(levels) {
  const sel = $("rendition");
  $("rendition-label").textContent = "Quality";
  sel.dataset.mode = "hls";
  sel.innerHTML = "";
  const auto = document.createElement("option");
  auto.value = "-1"; auto.textContent = "Auto";
  sel.appendChild(auto);
  for (const l of levels) {
    const o = document.createElement("option");
    o.value = String(l.index);
    o.textContent = `${l.height}p (${l.width}×${l.height}, ${Math.round(l.bitrate / 1000)} kb/s)`;
    sel.appendChild(o);
  }
}

function showAutoLevel() {
  const auto = $("rendition").querySelector("option[value='-1']");
  const level = hls && hls.levels[hls.currentLevel];
  if (auto) auto.textContent = hls.autoLevelEnabled && level ? `Auto (${level.height}p)` : "Auto";
}

// A progressive rendition whose grant expired: the same rendition, where it was, under the
// newest grant (hls.js needs none of this: every request it makes takes the newest).
$("player").addEventListener("error", async () => {
  const p = $("player");
  if (hls || !shownRendition || !p.src || !GRANT_PATH.test(shownRendition)) return;
  if (withNewestGrant(shownRendition) === shownRendition && !(await renewGrant())) return;
  if (!hls && shownRendition) setRendition(shownRendition);
});

$("rendition").onchange = (e) => {
  if (e.target.dataset.mode !== "hls") { setRendition(e.target.value); return; }
  // currentLevel switches now (the buffer is flushed), so the choice shows at once; -1 = auto.
  if (hls) hls.currentLevel = parseInt(e.target.value, 10);
  showAutoLevel();
};

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
  // The track element's own: hls.js may add text tracks of its own to the video.
  const tt = track.track;
  const on = !btn.classList.contains("on");
  tt.mode = on ? "showing" : "hidden";
  btn.classList.toggle("on", on);
  btn.textContent = on ? "Captions on" : "Captions";
};

// --- scrub bar and storyboard preview --------------------------------------------------------
// The bar under the video seeks on click and, when the video has a storyboard (a WebVTT
// thumbnails track whose cues say "sprite.jpg#xywh=x,y,w,h"), shows the tile of the hovered
// time above it, as the big players do.
function parseVttTime(text) {
  const parts = text.split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

function parseThumbnails(text, base) {
  const cues = [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const timing = /^\s*((?:\d+:)?\d{1,2}:\d{2}\.\d{3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}\.\d{3})/;
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].match(timing);
    const target = (lines[i + 1] || "").trim().match(/^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$/);
    if (!m || !target) continue;
    cues.push({ start: parseVttTime(m[1]), end: parseVttTime(m[2]),
      url: new URL(target[1], base).href, x: +target[2], y: +target[3], w: +target[4],
      h: +target[5] });
  }
  return cues;
}

async function loadStoryboard(url) {
  const id = currentVideo;
  try {
    const res = await fetch(url, { headers: authHeaders() });
    if (!res.ok) return;  // no previews; the video still plays
    const cues = parseThumbnails(await res.text(), new URL(url, location.href));
    if (id === currentVideo) storyboard = cues;
  } catch (_) { /* no previews */ }
}

function cueAt(t) {
  let found = null;
  for (const c of storyboard) { if (c.start <= t) found = c; if (t < c.end) break; }
  return found;
}

function mediaDuration() {
  const d = $("player").duration;
  return Number.isFinite(d) ? d : 0;
}

function scrubTime(ev) {
  const r = $("scrub").getBoundingClientRect();
  return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)) * mediaDuration();
}

function clock(t) {
  const s = Math.floor(t);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function showPreview(ev) {
  const preview = $("storyboard-preview");
  const t = scrubTime(ev);
  const cue = mediaDuration() ? cueAt(t) : null;
  if (!cue) { preview.hidden = true; return; }
  const tile = preview.querySelector(".tile");
  tile.style.width = cue.w + "px";
  tile.style.height = cue.h + "px";
  tile.style.backgroundImage = `url("${cue.url}")`;
  tile.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
  preview.querySelector(".time").textContent = clock(t);
  preview.dataset.time = t.toFixed(3);
  const bar = $("scrub").getBoundingClientRect();
  const left = Math.min(bar.width - cue.w, Math.max(0, ev.clientX - bar.left - cue.w / 2));
  preview.style.left = left + "px";
  preview.hidden = false;
}

function showPlayed() {
  const p = $("player");
  const d = mediaDuration();
  $("scrub").querySelector(".scrub-fill").style.width = d ? `${(p.currentTime / d) * 100}%` : "0";
  $("scrub").setAttribute("aria-valuemax", d.toFixed(1));
  $("scrub").setAttribute("aria-valuenow", p.currentTime.toFixed(1));
}

$("scrub").onmousemove = showPreview;
$("scrub").onmouseleave = () => { $("storyboard-preview").hidden = true; };
$("scrub").onclick = (ev) => { if (mediaDuration()) $("player").currentTime = scrubTime(ev); };
$("scrub").onkeydown = (ev) => {
  const step = { ArrowLeft: -5, ArrowRight: 5 }[ev.key];
  if (step && mediaDuration()) { $("player").currentTime += step; ev.preventDefault(); }
};
for (const name of ["timeupdate", "durationchange", "seeked"]) {
  $("player").addEventListener(name, showPlayed);
}

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

// A job page's address (#video=ID) opens that video again after a reload or from a link.
function videoInAddress() {
  const m = location.hash.match(/^#video=([A-Za-z0-9_-]+)$/);
  if (m && m[1] !== currentVideo) openVideo(m[1]);
}
window.addEventListener("hashchange", videoInAddress);

loadConfig().then(() => { refreshList(); videoInAddress(); });
setInterval(refreshList, 5000);
