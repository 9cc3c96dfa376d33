// Requests to the /v1 API, with the API key. The key comes from /v1/config when the server
// exposes it to localhost (SPOOL_API_EXPOSE_KEY_TO_LOCALHOST=true), else from the user
// ("API key…"), kept in localStorage.
import { $ } from "./dom.js";

let apiKey = localStorage.getItem("spool.apiKey") || null;

export function authHeaders() { return apiKey ? { Authorization: "Bearer " + apiKey } : {}; }
function showKeyState() { $("keystate").textContent = apiKey ? "API key set" : "no API key"; }

export async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { ...authHeaders(), ...(opts.headers || {}) } });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) {
    const err = body && body.error ? body.error : { message: res.statusText };
    throw new Error(err.message + (err.field ? ` (field: ${err.field})` : ""));
  }
  return body;
}

export async function loadConfig() {
  try {
    const cfg = await api("/v1/config");
    if (cfg.api_key) { apiKey = cfg.api_key; }
  } catch (_) { /* the page still works for reads */ }
  showKeyState();
}

export function wireKeyButton() {
  $("setkey").onclick = () => {
    const k = prompt("API key for uploads and publishing:", apiKey || "");
    if (k !== null) { apiKey = k.trim() || null; localStorage.setItem("spool.apiKey", apiKey || ""); }
    showKeyState();
  };
}
