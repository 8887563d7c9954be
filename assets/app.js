// cfgsnap web UI enhancements. Every page works without this file; it only
// shows times in the browser's time zone, offers a copy button and sends
// the theme form back to the current page.
(function () {
  "use strict";
  function enhance(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        el.title = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
      }
    });
    root.querySelectorAll("input.back-here").forEach(function (el) {
      el.value = location.pathname + location.search;
    });
    root.querySelectorAll("button.copy[data-copy]").forEach(function (btn) {
      var target = document.getElementById(btn.getAttribute("data-copy"));
      if (!target || !navigator.clipboard) { return; }
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var text = Array.prototype.map.call(target.querySelectorAll("td.text"), function (td) {
          return td.textContent;
        }).join("\n") + "\n";
        navigator.clipboard.writeText(text).then(function () { btn.textContent = "Copied"; });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:afterSwap", function (e) { enhance(e.target); });
})();
