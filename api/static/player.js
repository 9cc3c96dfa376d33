// The open video's player. A video plays as HLS with adaptive bitrate when the status has
// `hls_url`, through hls.js (Media Source Extensions: a quality menu, and HLS where the
// browser has none of its own, as in Firefox), else from the progressive MP4 of the chosen
// rendition (videos made before HLS). Every request hls.js makes, and a progressive
// rendition's address, take the newest read grant (grants.js).
import { $ } from "./dom.js";
import { GRANT_PATH, currentVideo, grantBase, renewGrant, withNewestGrant } from "./grants.js";
import { forgetStoryboard, loadStoryboard } from "./storyboard.js";

let hls = null;             // the hls.js player of the open video, while it plays HLS
let hlsScript = null;       // the promise of hls.js, loaded once, when a video first needs it
let renewing = null;        // the status being read again for a new grant, while it is
let shownRendition = null;  // what the player was given: the master playlist or an MP4
let playingLive = false;    // whether that is the live playlist of a job still running

export function resetPlayer() {
  if (hls) { hls.destroy(); hls = null; }
  shownRendition = null;
  playingLive = false;
  forgetStoryboard();
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

export function showPlayer(v) {
  const box = $("player-box");
  if (v.poster_url && !$("player").poster) $("player").poster = v.poster_url;
  if (!box.hidden && shownRendition) {
    // Already playing: polls change nothing, except that a job's live playlist gives way to
    // the full ladder once it is ready, where the viewer is.
    if (playingLive && v.hls_url && hls) switchToLadder(v);
    return;
  }
  box.hidden = false;
  if (v.storyboard_url) loadStoryboard(v.storyboard_url);
  if (v.hls_url || v.playable_url) playHls(v);
  else playProgressive(v);
}

function switchToLadder(v) {
  const p = $("player");
  const at = p.currentTime || 0;
  const paused = p.paused;
  hls.destroy(); hls = null;
  $("stream-note").textContent = "";
  p.addEventListener("loadedmetadata", () => {
    p.currentTime = at;
    if (!paused) p.play().catch(() => {});
  }, { once: true });
  playHls(v);
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
  shownRendition = v.hls_url || v.playable_url;
  // While the job runs, the status's playable URL is its live playlist (one rendition, growing).
  playingLive = !v.hls_url;
  if (playingLive) $("stream-note").textContent = "Still processing: playing what is ready so far.";
  let Hls = null;
  try { Hls = await loadHlsJs(); } catch (_) { Hls = null; }
  if (id !== currentVideo) return;
  if (Hls && Hls.isSupported()) startHls(Hls, v);
  else playWithoutHlsJs(Hls, v);
}

function startHls(Hls, v) {
  // startPosition 0: a live playlist (EVENT, still growing) plays from its start, not from
  // near its end as a live broadcast would.
  hls = new Hls({
    startPosition: 0,
    xhrSetup: (xhr, url) => xhr.open("GET", withNewestGrant(url), true),
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => fillLevels());
  hls.on(Hls.Events.LEVEL_SWITCHED, () => showAutoLevel());
  hls.on(Hls.Events.ERROR, (_e, data) => onHlsError(v, data));
  hls.loadSource(v.hls_url || v.playable_url);
  hls.attachMedia($("player"));
}

function playWithoutHlsJs(Hls, v) {
  const p = $("player");
  const missing = Hls ? "" : "The quality menu needs hls.js, which this server does not have "
    + "(run `make install`): ";
  if (p.canPlayType("application/vnd.apple.mpegurl")) {
    // The browser's own HLS (Safari, recent Chromium) picks the quality: the menu has only Auto.
    $("stream-note").textContent = missing && missing + "this browser's own HLS player picks "
      + "the quality.";
    fillQualityMenu([]);
    p.src = v.hls_url || v.playable_url;
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
async function replayUnderNewestGrant() {
  const p = $("player");
  if (hls || !shownRendition || !p.src || !GRANT_PATH.test(shownRendition)) return;
  if (withNewestGrant(shownRendition) === shownRendition && !(await renewGrant())) return;
  if (!hls && shownRendition) setRendition(shownRendition);
}

function chooseQuality(e) {
  if (e.target.dataset.mode !== "hls") { setRendition(e.target.value); return; }
  // currentLevel switches now (the buffer is flushed), so the choice shows at once; -1 = auto.
  if (hls) hls.currentLevel = parseInt(e.target.value, 10);
  showAutoLevel();
}

function toggleCaptions() {
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
}

export function wirePlayer() {
  $("player").addEventListener("error", replayUnderNewestGrant);
  $("rendition").onchange = chooseQuality;
  $("captions-btn").onclick = toggleCaptions;
}
