// The deletion's progress, updated in place: every few seconds the page is fetched
// again and its heading, steps and status replace the ones shown (the status is a
// live region, so a screen reader hears the change). The page itself never reloads,
// so nothing moves under the reader's focus. Without JavaScript the page reloads
// itself instead (a <noscript> refresh), with a link to stop that.
(function () {
  "use strict";

  var status = document.getElementById("deletion-status");
  if (!status || !window.fetch || !window.DOMParser) return;
  var every = 1000 * (parseInt(status.getAttribute("data-refresh"), 10) || 2);

  function done(element) {
    return element.getAttribute("data-status") === "done";
  }

  function swap(fresh, selector) {
    var now = document.querySelector(selector);
    var next = fresh.querySelector(selector);
    if (now && next) now.innerHTML = next.innerHTML;
  }

  function poll() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var next = fresh.getElementById("deletion-status");
        if (!next) return;
        swap(fresh, "main h1");
        swap(fresh, "ol.steps");
        var steps = document.querySelectorAll("ol.steps li");
        fresh.querySelectorAll("ol.steps li").forEach(function (li, i) {
          if (steps[i]) steps[i].className = li.className;
        });
        status.innerHTML = next.innerHTML;
        status.setAttribute("data-status", next.getAttribute("data-status"));
        document.title = fresh.title;
        if (!done(status)) window.setTimeout(poll, every);
      })
      .catch(function () {
        window.setTimeout(poll, every * 3);
      });
  }

  if (!done(status)) window.setTimeout(poll, every);
})();
