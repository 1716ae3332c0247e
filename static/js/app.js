// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Busy state for forms that leave for Stripe or do slow work: disable the button, show its data-busy text.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = form.querySelector("button[data-busy]");
    if (!button) return;
    form.setAttribute("aria-busy", "true");
    button.disabled = true;
    button.textContent = button.getAttribute("data-busy");
  });
  // Toasts fade out after a while; keep errors until dismissed by navigation.
  document.addEventListener("htmx:afterSwap", function () {
    window.setTimeout(function () {
      document.querySelectorAll(".toast-success, .toast-info").forEach(function (el) { el.remove(); });
    }, 8000);
  });
})();
