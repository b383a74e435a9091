// Loaded as a deferred classic script from the workspace's <head> (it runs once the page is parsed, before the
// modules, which run in document order after it). The page embeds the first item's `next` answer
// (#lumen-first-next) and preloads its first image; should that answer be unreadable, this script asks `next`
// itself before the modules run (a page opened on ?item= asks nothing here). workspace.js takes the answer from
// window.lumenFirstNext and uses lumenWarm for items it fetches ahead, to warm the browser's cache with the first
// image the tool will draw (frame URLs are immutable and cacheable).
(function () {
  "use strict";

  function firstImages(workspace) {
    const media = workspace && workspace.item && workspace.item.media;
    if (!media) return [];
    if (media.rest_url) return [media.rest_url, media.stress_url];
    if (media.frame_url_template) {
      const frame = workspace.item.frame_index === null ? 0 : workspace.item.frame_index;
      return [media.frame_url_template.replace("{n}", String(frame || 0))];
    }
    return [];
  }

  window.lumenWarm = function (workspace) {
    for (const url of firstImages(workspace)) {
      fetch(url, { credentials: "include" }).catch(() => {}); // a miss is fetched again by the tool
    }
  };

  const script = document.currentScript;
  if (!script || new URL(window.location.href).searchParams.get("item")) return;
  const embedded = document.getElementById("lumen-first-next");
  if (embedded) {
    try {
      window.lumenFirstNext = Promise.resolve(JSON.parse(embedded.textContent));
      return; // its first image is preloaded by the page's <link rel="preload">
    } catch {
      // fall through: ask the API
    }
  }
  window.lumenFirstNext = fetch(script.dataset.nextUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRFToken": script.dataset.csrf },
  })
    .then((response) => (response.ok ? response.json() : null))
    .then((body) => {
      if (body && body.workspace) window.lumenWarm(body.workspace);
      return body;
    })
    .catch(() => null); // workspace.js asks again and reports what went wrong
})();
