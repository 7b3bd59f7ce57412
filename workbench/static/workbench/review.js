// Cluster review: keyboard, the large viewer and the pair view. Works without it too (plain form).
(function () {
  "use strict";
  const form = document.getElementById("decide-form");
  if (!form) return;
  const members = Array.from(document.querySelectorAll("#members .member"));
  const actionField = document.getElementById("action-field");
  let focus = 0;
  let submitting = false;

  function setFocus(index) {
    if (!members.length) return;
    focus = (index + members.length) % members.length;
    members.forEach((m, i) => m.classList.toggle("focused", i === focus));
    members[focus].scrollIntoView({ block: "nearest" });
  }
  function toggle(index) {
    const box = members[index] && members[index].querySelector("input[type=checkbox]");
    if (box) { box.checked = !box.checked; members[index].classList.toggle("unchecked", !box.checked); }
  }
  function submit(action) {
    if (submitting) return;
    submitting = true;
    actionField.value = action;
    form.submit();
  }
  // Geometric verification of the members, asked for once the page is shown (local features take a moment
  // the first time): each member lists the members it shares matching points with, linked to the pair view.
  if (form.dataset.verification) {
    fetch(form.dataset.verification, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((data) => {
        if (!data) return;
        const position = new Map(members.map((m, i) => [m.dataset.id, i + 1]));
        document.querySelectorAll(".verification[data-for]").forEach((slot) => {
          const id = slot.dataset.for;
          const partners = data.verified_with[id] || [];
          slot.textContent = "";
          if (!partners.length) { slot.textContent = "no geometric match"; return; }
          slot.classList.remove("muted");
          slot.append("verified with ");
          partners.forEach((other, k) => {
            const link = document.createElement("a");
            link.href = `/pair/${id}/${other}/`;
            link.className = "tag positive verified";
            link.textContent = `#${position.get(String(other))}`;
            if (k) slot.append(" ");
            slot.append(link);
          });
        });
      })
      .catch(() => {});
  }
  form.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", (event) => { event.preventDefault(); submit(button.dataset.action); });
  });
  members.forEach((m, i) => {
    m.querySelector("input[type=checkbox]").addEventListener("change", (e) => m.classList.toggle("unchecked", !e.target.checked));
    m.querySelector("img.thumb").addEventListener("click", () => { setFocus(i); openViewer(i); });
  });

  // Viewer: wheel zooms about the pointer, drag pans.
  const viewer = document.getElementById("viewer");
  const viewerImg = viewer.querySelector("img");
  let zoom = 1, panX = 0, panY = 0, dragging = null;
  function applyTransform() { viewerImg.style.transform = `translate(${panX}px, ${panY}px) scale(${zoom})`; }
  function openViewer(index) {
    const m = members[index];
    viewerImg.src = m.dataset.viewer;
    viewer.querySelector(".caption").textContent = m.dataset.title;
    zoom = 1; panX = 0; panY = 0; applyTransform();
    closeAll(); viewer.hidden = false;
  }
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const factor = e.deltaY < 0 ? 1.2 : 1 / 1.2;
    zoom = Math.min(12, Math.max(1, zoom * factor));
    if (zoom === 1) { panX = 0; panY = 0; }
    applyTransform();
  }, { passive: false });
  viewer.addEventListener("mousedown", (e) => { dragging = { x: e.clientX - panX, y: e.clientY - panY }; e.preventDefault(); });
  window.addEventListener("mousemove", (e) => { if (dragging) { panX = e.clientX - dragging.x; panY = e.clientY - dragging.y; applyTransform(); } });
  window.addEventListener("mouseup", () => { dragging = null; });

  // Pair view: side by side, overlay with an opacity slider, or blink.
  const pair = document.getElementById("pair");
  const stage = pair.querySelector(".pair-stage");
  const left = stage.querySelector(".left"), right = stage.querySelector(".right");
  const opacity = document.getElementById("pair-opacity");
  let blinkTimer = null;
  function setMode(mode) {
    stage.className = "pair-stage " + mode;
    clearInterval(blinkTimer); blinkTimer = null;
    right.style.opacity = mode === "overlay" ? opacity.value / 100 : "";
    if (mode === "blink") {
      let shown = false;
      blinkTimer = setInterval(() => { shown = !shown; right.style.opacity = shown ? 1 : 0; }, 600);
    }
  }
  opacity.addEventListener("input", () => { if (stage.classList.contains("overlay")) right.style.opacity = opacity.value / 100; });
  pair.querySelectorAll("[data-mode]").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  function openPair(a, b) {
    if (members.length < 2) return;
    left.src = members[a].dataset.viewer; right.src = members[b].dataset.viewer;
    closeAll(); pair.hidden = false; setMode("side");
  }
  document.getElementById("pair-button").addEventListener("click", () => openPair(focus, (focus + 1) % members.length));

  const help = document.getElementById("help");
  document.getElementById("help-button").addEventListener("click", () => { closeAll(); help.hidden = false; });
  function closeAll() {
    [viewer, pair, help].forEach((o) => { o.hidden = true; });
    clearInterval(blinkTimer); blinkTimer = null;
  }
  [viewer, pair, help].forEach((o) => o.addEventListener("click", (e) => { if (e.target === o) closeAll(); }));

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName) && e.target.type !== "checkbox") return;
    // A held key repeats: one decision or one undo per press, never a burst of them.
    if (e.repeat && !["ArrowRight", "ArrowLeft", "j", "k"].includes(e.key)) { e.preventDefault(); return; }
    if (e.target.type === "checkbox") {
      // Keys act on the member whose tick box has the keyboard focus.
      const owner = members.indexOf(e.target.closest(".member"));
      if (owner >= 0 && owner !== focus) setFocus(owner);
    }
    const overlayOpen = !viewer.hidden || !pair.hidden || !help.hidden;
    if (e.key === "Escape") { closeAll(); return; }
    if (overlayOpen && !["ArrowRight", "ArrowLeft", "j", "k", "v", "Enter"].includes(e.key)) { if (e.key === "?") closeAll(); return; }
    const keys = {
      ArrowRight: () => { setFocus(focus + 1); if (!viewer.hidden) openViewer(focus); },
      j: () => { setFocus(focus + 1); if (!viewer.hidden) openViewer(focus); },
      ArrowLeft: () => { setFocus(focus - 1); if (!viewer.hidden) openViewer(focus); },
      k: () => { setFocus(focus - 1); if (!viewer.hidden) openViewer(focus); },
      x: () => toggle(focus),
      " ": () => toggle(focus),
      v: () => (viewer.hidden ? openViewer(focus) : closeAll()),
      Enter: () => (viewer.hidden ? openViewer(focus) : closeAll()),
      p: () => openPair(focus, (focus + 1) % members.length),
      c: () => submit("confirm"),
      e: () => submit("confirm_exclusive"),
      s: () => submit("similar"),
      r: () => submit("reject"),
      n: () => submit("skip"),
      u: () => { if (!submitting) { submitting = true; document.getElementById("undo-form").submit(); } },
      "?": () => { closeAll(); help.hidden = false; },
      "]": () => { const a = document.getElementById("next-proposal"); if (a) location.href = a.href; },
      "[": () => { const a = document.getElementById("prev-proposal"); if (a) location.href = a.href; },
    };
    if (/^[1-9]$/.test(e.key)) { toggle(Number(e.key) - 1); e.preventDefault(); return; }
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
})();
