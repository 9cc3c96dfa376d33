// The video open on the page, and the read grant of its latest status.
//
// With private reads a status gives media URLs under a read grant (/v1/videos/{id}/grant/…/)
// that lasts 12 hours or more. While a video is open its status is read again every 20
// minutes, and hls.js fetches every playlist and segment under the newest grant. A request
// refused all the same (the computer slept past the expiry) reads the status at once: hls.js
// then loads again, a progressive rendition goes on from the same time.
import { api } from "./api.js";

export const GRANT_REFRESH_MS = 20 * 60 * 1000;
export const GRANT_PATH = /\/v1\/videos\/[^/]+\/grant\/[^/]+\//;
export let currentVideo = null;
export let grantBase = null;  // "/v1/videos/{id}/grant/{grant}/" of the open video's latest status

export function setCurrentVideo(id) {
  currentVideo = id;
  grantBase = null;
}

export function noteGrant(v) {
  const url = [v.hls_url, v.poster_url, ...(v.renditions || []).map((r) => r.url)]
    .find((u) => u && GRANT_PATH.test(u));
  grantBase = url ? url.match(GRANT_PATH)[0] : null;
}

export function withNewestGrant(url) {
  return grantBase ? url.replace(GRANT_PATH, grantBase) : url;
}

export async function renewGrant() {
  // The open video's status again; true when it brought a newer grant.
  const id = currentVideo, before = grantBase;
  try {
    const v = await api(`/v1/videos/${id}`);
    if (id === currentVideo) noteGrant(v);
  } catch (_) { return false; }
  return id === currentVideo && grantBase !== before;
}

export function exposeGrant() {
  // A global, as when the page was one classic script: readable from the console.
  Object.defineProperty(window, "grantBase", { get: () => grantBase, configurable: true });
}
