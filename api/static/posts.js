// The blog panel: publish a post, search posts, an author's post count.
import { api } from "./api.js";
import { $ } from "./dom.js";

async function publish(ev) {
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
  try {
    const r = await api("/v1/authors/" + encodeURIComponent($("author-id").value.trim()));
    $("author-msg").textContent = `${r.author_id} has published ${r.post_count} post(s).`;
  } catch (e) { $("author-msg").textContent = "Lookup failed: " + e.message; }
}

export function wirePosts() {
  $("post-form").onsubmit = publish;
  $("search-form").onsubmit = search;
  $("author-form").onsubmit = countPosts;
}
