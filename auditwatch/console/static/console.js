// auditwatch console: progressive enhancement only (every page and form works without it).
// Live refresh of the alerts list: the page's URL holds the filter, so fetching it again gives the same filtered
// view; only the results region is replaced, never the form being edited.
"use strict";
(function () {
  const box = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!box) return;
  const key = "auditwatch.live";
  box.checked = sessionStorage.getItem(key) === "1";
  box.addEventListener("change", () => sessionStorage.setItem(key, box.checked ? "1" : "0"));
  const every = 1000 * Number(box.dataset.interval || 10);
  async function refresh() {
    if (!box.checked || document.hidden) return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) { status.textContent = "Refresh failed (" + response.status + ")"; return; }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("results");
      const current = document.getElementById("results");
      if (fresh && current) current.replaceWith(fresh);
      status.textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC";
    } catch (error) {
      status.textContent = "Refresh failed";
    }
  }
  window.setInterval(refresh, every);
})();

// The triage forms of an alert page share one "Your name" field: copy it into the other forms as it is typed.
(function () {
  const name = document.getElementById("t-author");
  if (!name) return;
  name.addEventListener("input", () => {
    for (const copy of document.querySelectorAll("input.author-copy")) copy.value = name.value;
  });
})();
