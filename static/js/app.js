// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Tell the server the browser's time zone so dates are shown in local time (UTC without JS).
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("tz=" + tz) === -1) {
      document.cookie = "tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* older browsers: keep the default zone */ }
  // Busy state for forms that leave for Stripe or do slow work: disable the button, show its data-busy text.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = form.querySelector("button[data-busy]");
    if (!button) return;
    form.setAttribute("aria-busy", "true");
    button.disabled = true;
    // Keep the icon and the spinner (shown by CSS while the form is busy); change only the words.
    var label = button.querySelector(".button-label") || button;
    label.textContent = button.getAttribute("data-busy");
  });
  // Toasts fade out after a while; keep errors until dismissed by navigation.
  document.addEventListener("htmx:afterSwap", function () {
    window.setTimeout(function () {
      document.querySelectorAll(".toast-success, .toast-info").forEach(function (el) { el.remove(); });
    }, 8000);
  });
  // Payment history: after "Previous"/"Next" the clicked link is gone; move focus to the new rows' summary.
  document.addEventListener("htmx:afterSettle", function (event) {
    var rows = document.getElementById("history-results");
    var detail = event.detail || {};
    var origin = detail.requestConfig && detail.requestConfig.elt;
    if (!rows || detail.target !== rows || !origin || !origin.hasAttribute("data-pager")) return;
    var summary = rows.querySelector("#history-summary");
    if (summary) { summary.focus(); summary.scrollIntoView({ block: "nearest" }); }
  });
  // A failed payment's reason: Escape hides the tooltip, leaving the badge resets it.
  document.addEventListener("keydown", function (event) {
    var badge = event.target.closest && event.target.closest(".failure .badge-button");
    if (badge && event.key === "Escape") badge.parentElement.classList.add("dismissed");
  });
  document.addEventListener("focusout", function (event) {
    var badge = event.target.closest && event.target.closest(".failure .badge-button");
    if (badge) badge.parentElement.classList.remove("dismissed");
  });
})();
