// The article editor's live preview: the server renders the Markdown with the article
// page's own renderer. The page works without this file (the preview shows the saved text).
"use strict";

(function () {
  const text = document.getElementById("editor-text");
  const preview = document.getElementById("preview");
  if (!text || !preview) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let timer = null;
  let inflight = null;

  async function refresh() {
    if (inflight) inflight.abort();
    inflight = new AbortController();
    try {
      const response = await fetch(text.dataset.preview, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ text: text.value, id: text.dataset.articleId }),
        signal: inflight.signal,
      });
      if (!response.ok) return;
      const data = await response.json();
      // Rendered by the server's Markdown renderer: raw HTML escaped, unsafe links dropped.
      preview.innerHTML = data.html;
      preview.dataset.rendered = String(Date.now());
      showProblems(data.problems || []);
    } catch (error) {
      if (error.name !== "AbortError") throw error;
    }
  }

  // What lint would say on saving, as plain text (never HTML).
  function showProblems(problems) {
    const box = document.getElementById("live-problems");
    if (!box) return;
    const items = problems.map((p) => {
      const li = document.createElement("li");
      li.className = "problem-" + p.severity;
      li.textContent = "line " + p.line + ": " + p.severity + ": " + p.message + " [" + p.code + "]";
      return li;
    });
    if (!items.length) { box.replaceChildren(); return; }
    const list = document.createElement("ul");
    list.replaceChildren(...items);
    const heading = document.createElement("p");
    heading.textContent = "Lint (saving is refused while there are errors):";
    box.replaceChildren(heading, list);
  }

  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
})();
