/* Kiln's pages: live job status through the API's event streams, and the export form.
 * A static file (no inline script), loaded with `defer`; the pages work without it,
 * minus the live updates. */
(function () {
  "use strict";

  var FINAL = { completed: true, failed: true, cancelled: true };
  var MAX_LOG_LINES = 500;

  function follow(box) {
    var url = box.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var status = box.querySelector("[data-status]");
    var progress = box.querySelector("[data-progress]");
    var progressText = box.querySelector("[data-progress-text]");
    var log = box.querySelector("[data-log]");
    var source = new EventSource(url, { withCredentials: true });

    source.addEventListener("status", function (event) {
      var data = JSON.parse(event.data);
      if (status) {
        status.textContent = data.status;
        status.className = "status s-" + data.status;
      }
      box.setAttribute("data-current-status", data.status);
      if (FINAL[data.status]) {
        source.close();
        if (box.hasAttribute("data-reload-on-finish")) {
          window.setTimeout(function () { window.location.reload(); }, 300);
        }
      }
    });
    source.addEventListener("progress", function (event) {
      var data = JSON.parse(event.data);
      if (progress && data.total !== null) {
        progress.max = Math.max(data.total, 1);
        progress.value = data.done || 0;
        progress.textContent = data.done + " / " + data.total;
      }
      if (progressText) { progressText.textContent = data.done + " / " + data.total; }
    });
    source.addEventListener("log", function (event) {
      if (!log) { return; }
      var item = document.createElement("li");
      item.textContent = JSON.parse(event.data).line;
      log.appendChild(item);
      while (log.children.length > MAX_LOG_LINES) { log.removeChild(log.firstChild); }
    });
  }

  function providerForm(form) {
    var select = form.querySelector("select[name=provider]");
    var connection = form.querySelector("select[name=connection]");
    function update() {
      var provider = select.value;
      form.querySelectorAll("[data-for]").forEach(function (el) {
        var shown = el.getAttribute("data-for").split(" ").indexOf(provider) !== -1;
        el.hidden = !shown;
        el.querySelectorAll("input, select").forEach(function (input) { input.disabled = !shown; });
      });
      if (connection) {
        connection.querySelectorAll("option[data-provider]").forEach(function (option) {
          var wanted = provider === "git" ? "git" : provider;
          option.hidden = option.getAttribute("data-provider") !== wanted;
        });
      }
    }
    select.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-events]").forEach(follow);
    document.querySelectorAll("[data-provider-form]").forEach(providerForm);
    var preview = document.getElementById("preview-title");
    if (preview) { preview.focus(); }
    var invalid = document.querySelector("[aria-invalid=true]");
    if (invalid && !preview) { invalid.focus(); }
  });
})();
