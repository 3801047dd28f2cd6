// Search as you type, record the outcome, open articles in place, keyboard shortcuts.
// The page works without this file: every action is also a plain form.
"use strict";

(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const region = document.getElementById("results-region");
  const panel = document.getElementById("article-panel");
  const description = document.getElementById("description");
  const notice = document.getElementById("notice");
  const maxPaste = parseInt(description.dataset.max || "20000", 10);
  let timer = null;
  let inflight = null;
  let lastQuery = "";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  // The server escapes snippets and marks matches with <mark>; rebuild them from text
  // nodes and <mark> elements only, so nothing else can ever reach the page.
  function snippetNode(html) {
    const doc = new DOMParser().parseFromString("<p>" + html + "</p>", "text/html");
    const out = el("p", { class: "snippet" });
    doc.body.firstChild.childNodes.forEach((node) => {
      if (node.nodeType === Node.TEXT_NODE) out.appendChild(document.createTextNode(node.textContent));
      else if (node.nodeName === "MARK") out.appendChild(el("mark", { text: node.textContent }));
    });
    return out;
  }

  function showNotice(text) {
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  function queryPayload() {
    let text = description.value;
    if (text.length > maxPaste) {
      text = text.slice(0, maxPaste);
      showNotice("The description is long: only its first " + maxPaste.toLocaleString() + " characters are searched.");
    } else {
      showNotice("");
    }
    return {
      title: document.getElementById("title").value,
      description: text,
      incident_id: document.getElementById("incident_id").value,
      filters: { product: document.getElementById("product").value },
      k: 5,
    };
  }

  function renderGuidance() {
    region.replaceChildren(el("p", { class: "guidance", text: "Describe the incident above (what the user sees, error messages, what they tried) and matching fixes appear here." }));
  }

  function renderResults(data) {
    const parts = [];
    if (data.no_good_match) {
      parts.push(el("div", { class: "no-match", role: "status" }, [
        el("h2", { text: "No good match" }),
        el("p", { text: "Nothing in the knowledge base fits this incident well. The closest results are below, but treat them with care." }),
      ]));
    }
    const list = el("ol", { class: "results", id: "results", "data-suggestion-id": data.suggestion_id });
    data.results.forEach((r) => {
      const why = [];
      if (r.similar_count > 1) why.push("Resolved " + r.similar_count + " similar incidents");
      if (r.matched_terms.length) why.push("Matched: " + r.matched_terms.join(", "));
      why.push((r.product || "Any product") + (r.category ? " / " + r.category : ""));
      if (r.validated_at) why.push("Validated " + r.validated_at);
      else if (r.kind === "article") why.push(r.status.replace("_", " "));
      const item = el("li", { class: "result", tabindex: "0", "data-id": r.id, "data-kind": r.kind, "data-url": r.url }, [
        el("div", { class: "result-head" }, [
          el("span", { class: "kind kind-" + r.kind, text: r.kind === "article" ? "Article" : "Prior incident" }),
          el("a", { class: "title", href: r.url, text: r.title }),
          el("span", { class: "confidence", title: "Estimated chance this resolution fits", text: Math.round(r.score * 100) + "% match" }),
        ]),
        el("p", { class: "resolution" }, [el("strong", { text: "Fix: " }), document.createTextNode(r.resolution.length > 300 ? r.resolution.slice(0, 297) + "..." : r.resolution)]),
        snippetNode(r.snippet),
        el("p", { class: "why", text: why.join(" · ") }),
      ]);
      if (r.similar_incidents.length) {
        const ul = el("ul");
        r.similar_incidents.forEach((s) => ul.appendChild(el("li", {}, [el("a", { href: "/incidents/" + encodeURIComponent(s.id), text: s.id }), document.createTextNode(": " + s.title)])));
        item.appendChild(el("details", { class: "similar" }, [el("summary", { text: "Similar incidents behind this" }), ul]));
      }
      const button = el("button", { type: "button", class: "used", "data-used": r.id, text: "Used this" });
      item.appendChild(el("div", { class: "feedback" }, [button]));
      list.appendChild(item);
    });
    parts.push(list);
    parts.push(el("div", { class: "feedback none-helped" }, [el("button", { type: "button", class: "secondary", "data-none": "1", text: "None helped" })]));
    parts.push(el("p", { class: "status-line", id: "feedback-status", role: "status" }));
    region.replaceChildren(...parts);
  }

  async function runSearch() {
    const payload = queryPayload();
    const key = JSON.stringify(payload);
    if (key === lastQuery) return;
    lastQuery = key;
    if (!(payload.title.trim() || payload.description.trim())) {
      renderGuidance();
      return;
    }
    if (inflight) inflight.abort();
    inflight = new AbortController();
    try {
      const response = await fetch("/api/v1/suggest", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(payload),
        signal: inflight.signal,
      });
      if (response.status === 401) return signInAgain();
      const data = await response.json();
      if (!response.ok) {
        region.replaceChildren(el("p", { class: "guidance", text: data.error ? data.error.message : "Search failed." }));
        return;
      }
      renderResults(data);
    } catch (err) {
      if (err.name !== "AbortError") region.replaceChildren(el("p", { class: "guidance", text: "Search failed: " + err.message }));
    }
  }

  // The session ended: keep what was typed, and come back to it after signing in.
  function signInAgain() {
    const params = new URLSearchParams({
      title: document.getElementById("title").value,
      description: description.value.slice(0, 4000),
      incident_id: document.getElementById("incident_id").value,
      product: document.getElementById("product").value,
    });
    window.location.href = "/login?next=" + encodeURIComponent("/?" + params.toString());
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(runSearch, 300);
  }

  async function sendFeedback(used, button) {
    const list = document.getElementById("results");
    if (!list) return;
    const status = document.getElementById("feedback-status");
    const id = list.dataset.suggestionId;
    region.querySelectorAll("button[data-used], button[data-none]").forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch("/api/v1/suggestions/" + encodeURIComponent(id) + "/feedback", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ used: used, outcome: used ? "used" : "none_helped" }),
      });
      if (response.status === 401) return signInAgain();
      const data = await response.json();
      if (!response.ok) throw new Error(data.error ? data.error.message : "not recorded");
      region.querySelectorAll(".chosen").forEach((b) => { b.classList.remove("chosen"); b.setAttribute("aria-pressed", "false"); });
      button.classList.add("chosen");
      button.setAttribute("aria-pressed", "true");
      const what = used ? "Recorded: you used " + used + "." : "Recorded: none of these helped.";
      status.textContent = what + (data.status === "changed" ? " (choice changed)" : "") + " You can change it.";
    } catch (err) {
      status.textContent = "Could not record your choice: " + err.message;
    } finally {
      region.querySelectorAll("button[data-used], button[data-none]").forEach((b) => { b.disabled = false; });
    }
  }

  async function openArticle(url) {
    if (!url.startsWith("/articles/")) {
      window.location.href = url;
      return;
    }
    const response = await fetch(url + "?partial=1", { credentials: "same-origin" });
    if (response.status === 401 || response.redirected) return signInAgain();
    const html = await response.text();
    // The fragment is rendered by the server from Markdown with raw HTML disabled.
    const doc = new DOMParser().parseFromString(html, "text/html");
    const close = el("button", { type: "button", class: "secondary", text: "Close article" });
    close.addEventListener("click", () => { panel.hidden = true; });
    panel.replaceChildren(close, ...Array.from(doc.body.childNodes));
    panel.hidden = false;
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener("submit", (event) => { event.preventDefault(); lastQuery = ""; runSearch(); });

  region.addEventListener("click", (event) => {
    const used = event.target.closest("button[data-used]");
    if (used) { event.preventDefault(); sendFeedback(used.dataset.used, used); return; }
    const none = event.target.closest("button[data-none]");
    if (none) { event.preventDefault(); sendFeedback(null, none); return; }
    const link = event.target.closest("a.title");
    if (link && link.getAttribute("href").startsWith("/articles/")) {
      event.preventDefault();
      openArticle(link.getAttribute("href"));
    }
  });

  function results() { return Array.from(region.querySelectorAll(".result")); }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (typing) {
      if (event.key === "Escape") document.activeElement.blur();
      return;
    }
    if (event.key === "/") {
      event.preventDefault();
      description.focus();
      return;
    }
    const items = results();
    if (!items.length) return;
    const focused = document.activeElement.closest ? document.activeElement.closest(".result") : null;
    const current = items.indexOf(focused);
    if (event.key === "ArrowDown" || event.key === "j") {
      event.preventDefault();
      items[Math.min(items.length - 1, current + 1)].focus();
    } else if (event.key === "ArrowUp" || event.key === "k") {
      event.preventDefault();
      items[Math.max(0, current - 1)].focus();
    } else if (event.key === "Enter" && document.activeElement === focused && focused) {
      event.preventDefault();
      openArticle(focused.dataset.url);
    } else if (event.key === "u" && focused) {
      event.preventDefault();
      sendFeedback(focused.dataset.id, focused.querySelector("button.used"));
    }
  });
})();
