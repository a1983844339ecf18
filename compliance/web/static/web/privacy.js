// Consent switches without a page reload. Without JavaScript each switch is a plain
// form that posts and comes back with a message; with it, the same form is sent in the
// background and the switch and its message change in place.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("consent-form")) return;
    if (!window.fetch || !window.FormData) return;
    event.preventDefault();

    var button = form.querySelector("button.switch");
    var hidden = form.querySelector("input[name=granted]");
    var item = form.closest(".consent-item");
    var feedback = item && item.querySelector(".feedback");
    var source = item && item.querySelector(".source");
    button.setAttribute("aria-busy", "true");
    button.disabled = true;

    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (result) {
        var body = result.body;
        if (result.ok) {
          button.setAttribute("aria-checked", body.granted ? "true" : "false");
          hidden.value = body.granted ? "false" : "true";
          if (source) source.textContent = form.dataset.justNow || "Your choice, just now";
          show(feedback, body.message, "message-success");
        } else {
          // A refusal is the API's error envelope; its message is written for people.
          var refusal = body && body.error;
          show(
            feedback,
            (refusal && refusal.message) || form.dataset.failed || "That did not work. Please try again.",
            "message-error"
          );
        }
      })
      .catch(function () {
        // Signed out, offline or an unexpected answer: the ordinary form post knows what to do.
        form.submit();
      })
      .finally(function () {
        button.removeAttribute("aria-busy");
        button.disabled = false;
        button.focus();
      });
  });

  function show(element, text, kind) {
    if (!element) return;
    element.className = "feedback message " + kind;
    element.textContent = text;
  }
})();
