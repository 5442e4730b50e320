// convostore serve: the page's only script (the CSP allows no inline script).
// Copy buttons, and live updates of an open conversation (server-sent events, else polling).
"use strict";

function copyText(text, button) {
  function done() {
    button.classList.add("done");
    const label = button.textContent;
    button.textContent = "copied";
    setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 1200);
  }
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
  }
  fallbackCopy(text);
  done();
  return Promise.resolve();
}

function fallbackCopy(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
  area.remove();
}

document.addEventListener("click", function (event) {
  const button = event.target.closest("button.copy");
  if (!button) return;
  if (button.dataset.copy) {
    copyText(button.dataset.copy, button);
  } else if (button.dataset.history) {
    fetch(button.dataset.history, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (text) {
        // The same object `convostore history ID --json` prints, indented as it prints it.
        return copyText(JSON.stringify(JSON.parse(text), null, 2), button);
      })
      .catch(function () { button.textContent = "failed"; });
  }
});

function startLive() {
  const section = document.getElementById("conversation");
  const status = document.querySelector("[data-testid=live-status]");
  if (!section || !status) return;
  const cid = section.dataset.conversation;
  const base = "/api/conversations/" + encodeURIComponent(cid);
  let busy = false;
  let pending = false;
  let lastState = null;

  function setStatus(state) {
    status.dataset.state = state;
    status.textContent = state;
  }

  function fetchTurns() {
    if (busy) { pending = true; return; }
    busy = true;
    fetch(base + "/turns?since=" + encodeURIComponent(section.dataset.leaf), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        if (data.count > 0) {
          const holder = document.createElement("div");
          holder.innerHTML = data.html;  // server-rendered, every stored text escaped
          const list = document.getElementById("turns");
          Array.from(holder.children).forEach(function (el) { el.classList.add("new"); list.appendChild(el); });
          section.dataset.leaf = data.leaf;
        } else if (data.newest && data.newest !== section.dataset.newest && data.newest !== section.dataset.leaf) {
          // Recorded since the page was drawn, on a branch other than the one shown.
          const note = document.getElementById("elsewhere");
          const link = note.querySelector("a");
          link.href = "/interactions/" + encodeURIComponent(data.newest);
          note.hidden = false;
        }
        if (data.newest) section.dataset.newest = data.newest;
      })
      .catch(function () { /* the next event tries again */ })
      .finally(function () {
        busy = false;
        if (pending) { pending = false; fetchTurns(); }
      });
  }

  function poll() {
    setStatus("polling");
    function tick() {
      fetch(base + "/state", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (state) {
          const key = JSON.stringify(state);
          if (lastState !== null && key !== lastState) fetchTurns();
          lastState = key;
          setStatus("polling");
        })
        .catch(function () { setStatus("offline"); })
        .finally(function () { setTimeout(tick, 2000); });
    }
    tick();
  }

  if (!window.EventSource) { poll(); return; }
  const source = new EventSource(base + "/events");
  let opened = false;
  source.addEventListener("hello", function () { opened = true; setStatus("live"); fetchTurns(); });
  source.addEventListener("turn", function () { setStatus("live"); fetchTurns(); });
  source.onerror = function () {
    if (!opened) { source.close(); poll(); return; }
    setStatus("offline");  // EventSource reconnects by itself; "hello" sets it live again
  };
}

document.addEventListener("DOMContentLoaded", startLive);
