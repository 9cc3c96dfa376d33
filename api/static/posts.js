// The blog panel: publish a post (now or at a time), search posts, an author's post count
// and posts, each with its state (a scheduled one with its time) and unpublish/delete buttons.
import { api } from "./api.js";
import { $ } from "./dom.js";

async function publish(ev) {
  ev.preventDefault();
  const post = {
    post_id: $("post-id").value.trim(), author_id: $("post-author").value.trim(),
    version: parseInt($("post-version").value, 10) || 1,
    title: $("post-title").value, body: $("post-body").value,
  };
  // datetime-local is the viewer's local time without a zone: sent as UTC.
  if ($("post-at").value) post.publish_at = new Date($("post-at").value).toISOString();
  try {
    const r = await api("/v1/posts", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(post),
    });
    $("post-msg").className = "msg";
    $("post-msg").textContent = r.state === "scheduled"
      ? `Scheduled for ${new Date(r.publish_at).toLocaleString()} (job ${r.job_id}).`
      : `Publishing (job ${r.job_id}).`;
  } catch (e) {
    $("post-msg").className = "msg error";
    $("post-msg").textContent = "Not published: " + e.message;
  }
}

async function search(ev) {
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
}

async function countPosts(ev) {
  ev.preventDefault();
  const author = $("author-id").value.trim();
  try {
    const r = await api("/v1/authors/" + encodeURIComponent(author));
    $("author-msg").textContent = `${r.author_id} has published ${r.post_count} post(s).`;
    await listPosts(author);
  } catch (e) { $("author-msg").textContent = "Lookup failed: " + e.message; }
}

async function listPosts(author) {
  const body = $("author-posts").querySelector("tbody");
  const rows = [];
  let cursor = null;
  do {  // every page: an author's posts are few enough to show at once
    const q = "?author_id=" + encodeURIComponent(author) + (cursor ? "&cursor=" + cursor : "");
    const page = await api("/v1/posts" + q);
    for (const p of page.posts) rows.push(postRow(p, author));
    cursor = page.next_cursor;
  } while (cursor);
  body.replaceChildren(...rows);
}

function postRow(p, author) {
  const tr = document.createElement("tr");
  tr.dataset.post = p.post_id;
  const when = p.state === "scheduled" && p.publish_at
    ? new Date(p.publish_at).toLocaleString() : "";
  for (const text of [`${p.title} (${p.post_id})`, p.state, when]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  const actions = document.createElement("td");
  if (p.state !== "unpublished") actions.appendChild(button("Unpublish", () =>
    operate(p.post_id, "/unpublish", "POST", author)));
  actions.appendChild(button("Delete", () => operate(p.post_id, "", "DELETE", author)));
  tr.appendChild(actions);
  return tr;
}

function button(label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onclick);
  return b;
}

async function operate(postId, suffix, method, author) {
  try {
    const r = await api("/v1/posts/" + encodeURIComponent(postId) + suffix, { method });
    $("author-msg").textContent = `${postId}: ${r.state || "accepted"} (job ${r.job_id}).`;
    await listPosts(author);
  } catch (e) { $("author-msg").textContent = `${postId}: ${e.message}`; }
}

export function wirePosts() {
  $("post-form").onsubmit = publish;
  $("search-form").onsubmit = search;
  $("author-form").onsubmit = countPosts;
}
