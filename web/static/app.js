// Search as you type, record the outcome, open articles in place, keyboard shortcuts.
// The page works without this file: every action is also a plain form.
"use strict";

(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const region = document.getElementById("results-region");
  const panel = document.getElementById("article-panel");
  const layout = document.getElementById("search-layout");
  const field = (id) => document.getElementById(id);
  const description = field("description");
  const notice = field("notice");
  const searchState = field("search-state");
  const maxPaste = parseInt(description.dataset.max || "20000", 10);
  const includeDrafts = form.dataset.includeDrafts === "1";
  const GUIDANCE = "Describe the incident on the left: what the user sees, any error message, what they already tried. Matching fixes appear here as you type.";
  let timer = null;
  let settleTimer = null;
  let currentPreview = false; // the search shown is a preview, not yet recorded
  const SETTLE_MS = 4000; // a search the agent stops typing at is recorded after this long
  let inflight = null;
  let lastQuery = "";
  let openedFrom = null;
  let currentSid = "";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children || []) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
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

  function currentIncident() {
    return {
      title: field("title").value,
      description: description.value,
      incident_id: field("incident_id").value,
      product: field("product").value,
    };
  }

  function queryPayload(quiet) {
    const typed = currentIncident();
    let text = typed.description;
    if (text.length > maxPaste) {
      text = text.slice(0, maxPaste);
      if (!quiet) showNotice("The description is long: only its first " + maxPaste.toLocaleString("en") + " characters are searched.");
    } else if (!quiet) {
      showNotice("");
    }
    const payload = {
      title: typed.title,
      description: text,
      incident_id: typed.incident_id,
      filters: { product: typed.product },
      k: 5,
    };
    if (includeDrafts) payload.include_drafts = true;
    return payload;
  }

  // The address of the search shown now, by its id: where forms return, and what a reload
  // shows. The typed text never goes into an address (or the history, or a server log).
  function backUrl() {
    return currentSid ? "/?sid=" + encodeURIComponent(currentSid) : "/";
  }

  function confidenceLabel(score) {
    if (score >= 0.7) return "High";
    if (score >= 0.4) return "Medium";
    return "Low";
  }

  function hidden(name, value) {
    return el("input", { type: "hidden", name: name, value: value || "" });
  }

  // What is typed now, as the hidden fields of a form that posts it.
  function typedFields() {
    const typed = currentIncident();
    return [
      hidden("csrf_token", csrf),
      hidden("title", typed.title),
      hidden("description", typed.description.slice(0, maxPaste)),
      hidden("incident_id", typed.incident_id),
      hidden("product", typed.product),
      hidden("back", backUrl()),
    ];
  }

  function draftForm() {
    const canEdit = includeDrafts;
    return el("form", { method: "post", action: "/drafts", class: "draft-form" }, [
      ...typedFields(),
      el("button", { type: "submit", class: "primary", "data-draft": "1", text: "Start a draft article" }),
      " ",
      el("span", { class: "hint", text: "from what you typed; " + (canEdit ? "you can edit it next" : "a knowledge manager completes it") }),
    ]);
  }

  function renderGuidance() {
    region.replaceChildren(el("div", { class: "guidance" }, [el("p", { text: GUIDANCE })]));
  }

  // The "Fix" with its code shown as code; the same split as fix_parts() in web/pages.py.
  function fixNode(resolution, code) {
    const out = el("div", { class: "resolution" }, [el("strong", { text: "Fix:" }), " "]);
    let pos = 0;
    for (const piece of code || []) {
      const at = piece.text ? resolution.indexOf(piece.text, pos) : -1;
      if (at < 0) continue;
      if (at > pos) out.appendChild(document.createTextNode(resolution.slice(pos, at)));
      const codeEl = el("code", { text: piece.text });
      out.appendChild(piece.block ? el("pre", {}, [codeEl]) : codeEl);
      pos = at + piece.text.length;
    }
    if (pos < resolution.length) out.appendChild(document.createTextNode(resolution.slice(pos)));
    return out;
  }

  function resultItem(r) {
    const label = confidenceLabel(r.score);
    const facts = el("ul", { class: "facts" });
    if (r.similar_count > 1) facts.appendChild(el("li", { class: "similar-count", text: "Resolved " + r.similar_count + " similar incidents" }));
    if (r.matched_terms.length) facts.appendChild(el("li", { text: "Matched: " + r.matched_terms.join(", ") }));
    facts.appendChild(el("li", { text: (r.product || "Any product") + (r.category ? " / " + r.category : "") }));
    if (r.kind === "article") {
      if (r.validated_at) facts.appendChild(el("li", { class: "state-validated", text: "Validated " + r.validated_at }));
      else facts.appendChild(el("li", { class: "state-" + r.status, text: r.status === "draft" ? "Draft" : "Not validated yet" }));
    }
    const titleId = "result-" + r.rank + "-title";
    const item = el("li", { class: "result result-" + label.toLowerCase(), tabindex: "0", "data-id": r.id, "data-kind": r.kind, "data-url": r.url, "data-note": r.resolution_note, "aria-labelledby": titleId }, [
      el("div", { class: "result-head" }, [
        el("span", { class: "kind kind-" + r.kind, text: r.kind === "article" ? "Article" : "Prior incident" }),
        el("a", { class: "title", id: titleId, href: r.url, text: r.title }),
        el("div", { class: "feedback used-form" }, [
          el("button", { type: "button", class: "used", "data-used": r.id, "aria-pressed": "false", text: "Used this" }),
        ]),
      ]),
      el("p", { class: "confidence confidence-" + label.toLowerCase() }, [
        el("meter", { min: "0", max: "1", low: "0.4", high: "0.7", optimum: "1", value: String(r.score), "aria-hidden": "true" }),
        el("span", { text: label + " confidence · " + (r.score < 0.005 ? "<1%" : Math.round(r.score * 100) + "%") }),
        " ",
        el("span", { class: "hint", text: "estimated chance this fixes it" }),
      ]),
      fixNode(r.resolution, r.resolution_code),
      snippetNode(r.snippet),
      facts,
    ]);
    if (r.similar_incidents.length) {
      const ul = el("ul");
      r.similar_incidents.forEach((s) => ul.appendChild(el("li", {}, [el("a", { href: "/incidents/" + encodeURIComponent(s.id), text: s.id }), ": " + s.title])));
      item.appendChild(el("details", { class: "similar" }, [el("summary", { text: "Similar incidents behind this" }), ul]));
    }
    return item;
  }

  function pct(p) { return p < 0.005 ? "<1%" : Math.round(p * 100) + "%"; }

  // The same markup as the triage box in _results.html.
  function triageNode(t) {
    if (!t || !t.similar_incidents) return null;
    const group = t.assignment_group || {};
    const line = el("p", {}, [el("strong", { text: "Route to:" }), " "]);
    if (group.value) {
      line.appendChild(el("span", { class: "route", text: group.value }));
      line.appendChild(document.createTextNode(" "));
      line.appendChild(el("span", { class: "hint", text: "(" + pct(group.probability) + ")" }));
    } else {
      line.appendChild(el("span", { class: "route not-sure", text: "not sure" }));
      if (group.best_guess) line.appendChild(el("span", { class: "hint", text: " (perhaps " + group.best_guess + ", " + pct(group.probability) + ")" }));
    }
    if (t.category && t.category.value) line.append(" · ", el("strong", { text: "Category:" }), " " + t.category.value);
    if (t.priority && t.priority.value) {
      line.append(" · ", el("strong", { text: "Priority:" }), " " + t.priority.value);
      if (t.priority.raised) line.append(" ", el("span", { class: "hint", text: "(" + t.priority.note + ")" }));
    }
    const box = el("aside", { class: "triage", "aria-label": "Triage" }, [line]);
    if (group.customer_tier && group.customer_tier.note) box.appendChild(el("p", { class: "hint tier-route", text: group.customer_tier.note + "." }));
    if (t.first_line && t.first_line.similar && t.first_line.text) box.appendChild(el("p", { class: "first-line", text: t.first_line.text + "." }));
    return box;
  }

  function renderResults(data) {
    const parts = [];
    if (data.no_good_match) {
      parts.push(el("div", { class: "no-match", role: "status" }, [
        el("h2", { text: "No good match" }),
        el("p", { text: "Nothing in the knowledge base fits this incident well." + (data.results.length ? " The closest results are below, but treat them with care." : "") + " Once you have solved it, capture what you learn so the next person finds it." }),
        draftForm(),
      ]));
    }
    if (data.language && data.language.served === false) {
      parts.push(el("p", { class: "language-note", role: "status", lang: "en", text: data.language.note }));
    }
    const status = el("p", { class: "status-line", id: "feedback-status", role: "status" });
    ((data.triage || {}).duplicates || []).forEach((d) => parts.push(el("p", { class: "duplicate", role: "status" }, [
      "Possible duplicate of ", el("a", { href: "/incidents/" + encodeURIComponent(d.id), text: d.id }),
      " (open, " + d.age + (d.product ? ", " + d.product : "") + "): " + d.title,
    ])));
    const triage = triageNode(data.triage);
    if (triage) parts.push(triage);
    if (data.results.length) {
      // Kept in view while the list scrolls (see .outcome-bar in app.css).
      const bar = el("div", { class: "outcome-bar" }, [
        el("h2", { class: "results-heading" }, ["Suggested resolutions ", el("span", { class: "hint", text: "(most likely first)" })]),
        el("div", { class: "feedback none-helped" }, [
          el("button", { type: "button", class: "secondary", "data-none": "1", "aria-pressed": "false", text: "None helped" }),
        ]),
        status,
      ]);
      if (!data.no_good_match) bar.appendChild(el("div", { class: "draft-after-none", hidden: true }, [draftForm()]));
      parts.push(bar);
      const list = el("ol", { class: "results", id: "results", "data-suggestion-id": data.suggestion_id });
      data.results.forEach((r) => list.appendChild(resultItem(r)));
      parts.push(list);
    } else {
      parts.push(status);
    }
    region.replaceChildren(...parts);
  }

  function setSearching(on) {
    region.setAttribute("aria-busy", on ? "true" : "false");
    searchState.textContent = on ? "Searching…" : "";
  }

  // Searches made while typing are previews: recorded as suggestions only once the agent
  // acts on one (opens a result, records a choice, presses Search) or stops typing.
  function settle() {
    clearTimeout(settleTimer);
    if (!currentSid || !currentPreview) return;
    currentPreview = false;
    fetch("/api/v1/suggestions/" + encodeURIComponent(currentSid) + "/settle", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: "{}",
      keepalive: true,
    }).catch(() => {});
  }

  async function runSearch(preview) {
    const payload = queryPayload();
    const key = JSON.stringify(payload);
    if (key === lastQuery) {
      if (!preview) settle();
      return;
    }
    lastQuery = key;
    clearTimeout(settleTimer);
    if (preview) payload.preview = true;
    if (inflight) inflight.abort();
    if (!(payload.title.trim() || payload.description.trim())) {
      inflight = null;
      setSearching(false);
      renderGuidance();
      currentSid = "";
      history.replaceState(null, "", "/");
      return;
    }
    inflight = new AbortController();
    setSearching(true);
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
      setSearching(false);
      if (!response.ok) {
        lastQuery = "";
        region.replaceChildren(el("p", { class: "guidance", text: data.error ? data.error.message : "Search failed." }));
        return;
      }
      currentSid = data.suggestion_id;
      currentPreview = !!preview;
      if (currentPreview) settleTimer = setTimeout(settle, SETTLE_MS);
      renderResults(data);
      if (data.truncated && notice.hidden) showNotice("This long text was searched by its error lines, its start and its end.");
      // A reload, or the back button after opening a page, shows the same search again.
      history.replaceState(null, "", backUrl());
    } catch (err) {
      if (err.name === "AbortError") return;
      setSearching(false);
      lastQuery = "";
      region.replaceChildren(el("p", { class: "guidance", text: "Search failed: " + err.message + ". Your text is kept; try again." }));
    }
  }

  // The session ended: post what is typed to the search page, which answers with the
  // sign-in form carrying it (never in an address); the search goes on after signing in.
  function signInAgain() {
    const post = el("form", { method: "post", action: "/", hidden: true }, typedFields());
    document.body.appendChild(post);
    post.submit();
  }

  function schedule() {
    clearTimeout(timer);
    clearTimeout(settleTimer);
    timer = setTimeout(() => runSearch(true), 250);
  }

  function markChosen(button) {
    region.querySelectorAll("button[data-used], button[data-none]").forEach((b) => {
      b.classList.remove("chosen");
      b.setAttribute("aria-pressed", "false");
    });
    region.querySelectorAll(".result.is-chosen").forEach((r) => r.classList.remove("is-chosen"));
    button.classList.add("chosen");
    button.setAttribute("aria-pressed", "true");
    const item = button.closest(".result");
    if (item) item.classList.add("is-chosen");
    const draft = region.querySelector(".draft-after-none");
    if (draft) draft.hidden = !button.dataset.none;
  }

  let sending = false;

  // The resolution note of a result (the fix, its title and link) for the ticket. It is
  // written to the clipboard while the click or key press is still being handled (browsers
  // allow that only then); the promise says whether it worked.
  function copyNote(note) {
    if (!note || !navigator.clipboard || !window.isSecureContext) return Promise.resolve(false);
    return navigator.clipboard.writeText(note).then(() => true, () => false);
  }

  // Below the status line: the note, selectable, for when the clipboard was not available.
  function showNote(status, note, copied) {
    const old = status.parentNode.querySelector(".resolution-note");
    if (old) old.remove();
    if (!note) return;
    const box = el("textarea", { class: "resolution-note-text", readonly: true, rows: "4", "aria-label": "Resolution note for the ticket" });
    box.value = note;
    const wrap = el("details", { class: "resolution-note", open: copied ? null : true }, [
      el("summary", { text: copied ? "Resolution note (copied)" : "Resolution note for the ticket" }), box,
    ]);
    status.after(wrap);
  }

  async function sendFeedback(used, button) {
    const list = field("results");
    if (!list || !button || sending) return;
    if (button.getAttribute("aria-pressed") === "true") return; // already the recorded choice
    sending = true;
    const shownItem = used ? list.querySelector('.result[data-id="' + CSS.escape(used) + '"]') : null;
    const copying = copyNote((button.dataset.note || (shownItem && shownItem.dataset.note)) || "");
    const status = field("feedback-status");
    const id = list.dataset.suggestionId;
    const buttons = region.querySelectorAll("button[data-used], button[data-none]");
    buttons.forEach((b) => { b.disabled = true; });
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
      currentPreview = false; // a choice records the search with it
      clearTimeout(settleTimer);
      markChosen(used && shownItem ? shownItem.querySelector("button.used") || button : button);
      let what = "Recorded: none of these helped.";
      if (used) {
        const title = shownItem ? shownItem.querySelector("a.title") : null;
        what = "Recorded: you used “" + (title ? title.textContent : used) + "”.";
      }
      const copied = await copying;
      if (copied) what += " The resolution note is copied: paste it into the ticket.";
      status.textContent = what + (data.status === "changed" ? " Your earlier choice is replaced." : "") + " You can change your choice.";
      showNote(status, data.resolution_note, copied);
      if (button.closest("#article-panel")) {
        button.classList.add("chosen");
        button.setAttribute("aria-pressed", "true");
      }
    } catch (err) {
      status.textContent = "Could not record your choice: " + err.message;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      sending = false;
    }
  }

  // Keep ``anchor`` where it is in the window while the layout around it changes.
  function keepInPlace(anchor, change) {
    const before = anchor && document.body.contains(anchor) ? anchor.getBoundingClientRect().top : null;
    change();
    if (before !== null) window.scrollBy(0, anchor.getBoundingClientRect().top - before);
  }

  function closePanel() {
    const from = openedFrom && document.body.contains(openedFrom) ? openedFrom : null;
    keepInPlace(from, () => {
      panel.hidden = true;
      panel.replaceChildren();
      layout.classList.remove("reading");
    });
    if (from) from.focus({ preventScroll: true });
  }

  async function openInPlace(url, from) {
    settle();
    if (!/^\/(articles|incidents)\//.test(url)) {
      window.location.href = url;
      return;
    }
    const response = await fetch(url + "?partial=1", { credentials: "same-origin" });
    if (response.redirected || response.status === 401) return signInAgain();
    if (!response.ok) {
      window.location.href = url; // the full page explains what went wrong
      return;
    }
    const html = await response.text();
    // The fragment is rendered by the server: Markdown with raw HTML disabled and unsafe
    // links dropped; the page's Content-Security-Policy forbids inline scripts as well.
    const doc = new DOMParser().parseFromString(html, "text/html");
    const close = el("button", { type: "button", class: "secondary close-panel", text: "Close (Esc)" });
    close.addEventListener("click", closePanel);
    const full = el("a", { href: url, class: "full-page", text: "Open as a page" });
    const actions = [close, full];
    // Read it, then use it: the panel has its own "Used this" for the result it came from.
    const listButton = from && from.querySelector ? from.querySelector("button.used") : null;
    if (listButton && field("results")) {
      const pressed = listButton.getAttribute("aria-pressed") === "true";
      const use = el("button", { type: "button", class: "used panel-used" + (pressed ? " chosen" : ""), "data-note": from.dataset.note, "aria-pressed": pressed ? "true" : "false", text: "Used this" });
      use.addEventListener("click", () => sendFeedback(from.dataset.id, use));
      actions.unshift(use);
    }
    // Beside the list (in place of the form); the result that opened it stays where it was.
    keepInPlace(from, () => {
      panel.replaceChildren(el("div", { class: "panel-actions" }, actions), ...Array.from(doc.body.childNodes));
      panel.hidden = false;
      panel.scrollTop = 0;
      layout.classList.add("reading");
    });
    openedFrom = from || null;
    const heading = panel.querySelector(".panel-title");
    if (heading) heading.focus({ preventScroll: true });
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    runSearch(false);
  });

  region.addEventListener("click", (event) => {
    const used = event.target.closest("button[data-used]");
    if (used) { event.preventDefault(); sendFeedback(used.dataset.used, used); return; }
    const none = event.target.closest("button[data-none]");
    if (none) { event.preventDefault(); sendFeedback(null, none); return; }
    const link = event.target.closest("a.title");
    if (link) settle(); // opening a result is acting on the search
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      openInPlace(link.getAttribute("href"), link.closest(".result"));
    }
  });

  // The draft form carries what was typed when the results were drawn; send what is typed now.
  region.addEventListener("submit", (event) => {
    const draft = event.target.closest("form.draft-form");
    if (!draft) return;
    const typed = currentIncident();
    for (const name of ["title", "incident_id", "product"]) draft.elements[name].value = typed[name];
    draft.elements.description.value = typed.description.slice(0, maxPaste);
    draft.elements.back.value = backUrl();
  });

  function results() { return Array.from(region.querySelectorAll(".result")); }

  // A focused result (arrow keys, j/k, Tab) is scrolled clear of the sticky outcome bar and
  // of the bottom of the window, so the agent always sees what the keys act on.
  function revealFocused(item) {
    const bar = region.querySelector(".outcome-bar");
    const barBottom = bar ? Math.max(0, bar.getBoundingClientRect().bottom) : 0;
    const box = item.getBoundingClientRect();
    const gap = 8;
    if (box.top < barBottom + gap) {
      window.scrollBy(0, box.top - barBottom - gap);
    } else if (box.bottom > window.innerHeight - gap && box.height < window.innerHeight - barBottom - 2 * gap) {
      window.scrollBy(0, box.bottom - window.innerHeight + gap);
    }
  }

  region.addEventListener("focusin", (event) => {
    const item = event.target.closest(".result");
    if (item) revealFocused(item);
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const active = document.activeElement;
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName);
    if (typing) {
      if (event.key === "Escape") active.blur();
      return;
    }
    if (event.key === "Escape" && !panel.hidden) {
      event.preventDefault();
      closePanel();
      return;
    }
    if (event.key === "/") {
      event.preventDefault();
      description.focus();
      return;
    }
    const items = results();
    if (!items.length) return;
    const focused = active && active.closest ? active.closest(".result") : null;
    const current = items.indexOf(focused);
    if (event.key === "ArrowDown" || event.key === "j") {
      event.preventDefault();
      items[Math.min(items.length - 1, current + 1)].focus();
    } else if (event.key === "ArrowUp" || event.key === "k") {
      event.preventDefault();
      items[Math.max(0, current - 1)].focus();
    } else if (event.key === "Enter" && focused && active === focused) {
      event.preventDefault();
      openInPlace(focused.dataset.url, focused);
    } else if (event.key === "u" && focused) {
      event.preventDefault();
      sendFeedback(focused.dataset.id, focused.querySelector("button.used"));
    }
  });

  // The server drew the results for the text already in the form (a reload, or a return
  // after signing in): remember that query so it is not sent again on the first keystroke.
  if (!region.querySelector(".guidance")) lastQuery = JSON.stringify(queryPayload(true));
  const shown = field("results");
  if (shown) currentSid = shown.dataset.suggestionId || "";
  else currentSid = new URLSearchParams(window.location.search).get("sid") || "";
})();
