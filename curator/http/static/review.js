// Keyboard shortcuts of the review pages. Plain JavaScript, no build step; loaded from this
// file because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" ||
                      target.tagName === "SELECT");
  }

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("section.image"));
  }

  var current = -1;

  function select(index) {
    var all = sections();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (section, i) { section.classList.toggle("current", i === current); });
    all[current].scrollIntoView({block: "nearest"});
  }

  function currentSection() {
    var all = sections();
    return current >= 0 ? all[current] : null;
  }

  function onDetailKey(event) {
    var section = currentSection();
    if (!section) { return; }
    var key = event.key;
    if (key === "j") { select(current + 1); return true; }
    if (key === "k") { select(current - 1); return true; }
    if (key === "/") { section.querySelector("textarea").focus(); return true; }
    if (/^[1-9]$/.test(key)) {
      var box = section.querySelector('input[data-key="' + key + '"]');
      if (box) { box.checked = !box.checked; }
      return true;
    }
    var button = section.querySelector('button[data-key="' + key + '"]');
    if (button) { button.click(); return true; }
    return false;
  }

  function onQueueKey(event) {
    if (event.key === "o") {
      var first = document.querySelector("table.queue a.open");
      if (first) { first.click(); return true; }
    }
    return false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var all = sections();
    var pending = all.findIndex(function (s) { return s.dataset.pending === "yes"; });
    if (all.length) { select(pending >= 0 ? pending : 0); }
    document.body.dataset.keysReady = "yes";  // the browser test waits for this
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var handled = document.body.classList.contains("detail-page") ? onDetailKey(event)
                                                                   : onQueueKey(event);
    if (handled) { event.preventDefault(); }
  });
})();
