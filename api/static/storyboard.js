// The scrub bar under the video and its storyboard preview. The bar seeks on click and, when
// the video has a storyboard (a WebVTT thumbnails track whose cues say
// "sprite.jpg#xywh=x,y,w,h"), shows the tile of the hovered time above it, as the big players
// do.
import { authHeaders } from "./api.js";
import { $ } from "./dom.js";
import { currentVideo } from "./grants.js";

let storyboard = [];  // the open video's thumbnail cues: {start, end, url, x, y, w, h}

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

export function forgetStoryboard() { storyboard = []; }

export async function loadStoryboard(url) {
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

export function wireScrubBar() {
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
}
