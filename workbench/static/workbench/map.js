// The collection map: up to 100,000 points on a canvas; pan, zoom, colour, hover preview, click, lasso.
(function () {
  "use strict";
  const canvas = document.getElementById("map-canvas");
  if (!canvas) return;
  const ctx = canvas.getContext("2d");
  const status = document.getElementById("map-status");
  const hover = document.getElementById("map-hover");
  const controls = { version: document.getElementById("map-version"), layout: document.getElementById("map-layout"),
    colour: document.getElementById("map-colour"), lasso: document.getElementById("map-lasso") };
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  let data = null, xs = null, ys = null, view = { scale: 1, x: 0, y: 0 }, grid = null, lassoPath = null, drag = null;

  // The page's URL templates carry 999999999 where the id goes (reversed by Django, never hand-built).
  function url(template, id) { return template.replace("999999999", String(id)); }
  function colourOf(i) {
    const mode = controls.colour.value;
    if (mode === "faces") return data.faces[i] === null ? "#dedede" : (data.faces[i] > 0 ? "#e76f51" : "#7a8fa6");
    if (mode === "reviewed") return data.reviewed[i] ? "#2a9d8f" : (data.cluster[i] >= 0 ? "#e9c46a" : "#b8b8b8");
    const key = mode === "cluster" ? data.cluster[i] : mode === "collection" ? data.collection[i] : data.split[i];
    if (key === -1 || key === null || key === "") return "#c8c8c8";
    let h = 0; const s = String(key);
    for (let k = 0; k < s.length; k++) h = (h * 31 + s.charCodeAt(k)) >>> 0;
    return `hsl(${(h * 137.508) % 360}, 65%, 45%)`;
  }
  function project() {
    const n = data.ids.length, time = controls.layout.value === "time";
    xs = new Float32Array(n); ys = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = time ? (data.year[i] === null ? NaN : data.year[i]) : data.x[i];
      ys[i] = time ? data.height[i] : data.y[i];
    }
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(xs[i])) continue;
      minX = Math.min(minX, xs[i]); maxX = Math.max(maxX, xs[i]); minY = Math.min(minY, ys[i]); maxY = Math.max(maxY, ys[i]);
    }
    const pad = 20, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
    const sx = w / Math.max(maxX - minX, 1e-9), sy = h / Math.max(maxY - minY, 1e-9);
    for (let i = 0; i < n; i++) { xs[i] = pad + (xs[i] - minX) * sx; ys[i] = pad + (maxY - ys[i]) * sy; }
    view = { scale: 1, x: 0, y: 0 };
    buildGrid();
  }
  function buildGrid() {  // buckets of 16 px in layout space, for hover and click hit-tests
    grid = new Map();
    for (let i = 0; i < xs.length; i++) {
      if (Number.isNaN(xs[i])) continue;
      const key = Math.floor(xs[i] / 16) + "," + Math.floor(ys[i] / 16);
      if (!grid.has(key)) grid.set(key, []);
      grid.get(key).push(i);
    }
  }
  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fbfaf7"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(view.scale, 0, 0, view.scale, view.x, view.y);
    const r = Math.max(1.2, 2.6 / Math.sqrt(view.scale)) ;
    const byColour = new Map();
    for (let i = 0; i < xs.length; i++) {
      if (Number.isNaN(xs[i])) continue;
      const c = colourOf(i);
      if (!byColour.has(c)) byColour.set(c, []);
      byColour.get(c).push(i);
    }
    for (const [c, points] of byColour) {  // one path per colour: fast for 100k points
      ctx.fillStyle = c; ctx.beginPath();
      for (const i of points) { ctx.moveTo(xs[i] + r, ys[i]); ctx.arc(xs[i], ys[i], r, 0, 2 * Math.PI); }
      ctx.fill();
    }
    if (lassoPath && lassoPath.length > 1) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.strokeStyle = "#264653"; ctx.lineWidth = 1.5; ctx.beginPath();
      lassoPath.forEach((p, k) => (k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
      ctx.stroke();
    }
  }
  function toLayout(px, py) { return [(px - view.x) / view.scale, (py - view.y) / view.scale]; }
  function pointer(e) { const b = canvas.getBoundingClientRect(); return [(e.clientX - b.left) * canvas.width / b.width, (e.clientY - b.top) * canvas.height / b.height]; }
  function nearest(px, py) {
    if (!data) return -1;
    const [lx, ly] = toLayout(px, py), gx = Math.floor(lx / 16), gy = Math.floor(ly / 16);
    const radius = 8 / view.scale, reach = Math.ceil(radius / 16);  // 8 screen pixels, in grid buckets
    let best = -1, bestD = radius ** 2;
    for (let dx = -reach; dx <= reach; dx++) for (let dy = -reach; dy <= reach; dy++) {
      for (const i of grid.get((gx + dx) + "," + (gy + dy)) || []) {
        const d = (xs[i] - lx) ** 2 + (ys[i] - ly) ** 2;
        if (d < bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }
  function inside(poly, x, y) {
    let hit = false;
    for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      const [xa, ya] = poly[a], [xb, yb] = poly[b];
      if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) hit = !hit;
    }
    return hit;
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (!data) return;
    const [px, py] = pointer(e), factor = e.deltaY < 0 ? 1.25 : 0.8;
    view.x = px - (px - view.x) * factor; view.y = py - (py - view.y) * factor; view.scale *= factor;
    draw();
  }, { passive: false });
  canvas.addEventListener("mousedown", (e) => {
    if (!data) return;
    const p = pointer(e);
    if (controls.lasso.checked) { lassoPath = [p]; return; }
    drag = { start: p, x: view.x, y: view.y, moved: false };
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!data) return;
    const p = pointer(e);
    if (lassoPath) { lassoPath.push(p); draw(); return; }
    if (drag) {
      view.x = drag.x + p[0] - drag.start[0]; view.y = drag.y + p[1] - drag.start[1];
      drag.moved = drag.moved || Math.abs(p[0] - drag.start[0]) + Math.abs(p[1] - drag.start[1]) > 3;
      draw(); return;
    }
    const i = nearest(p[0], p[1]);
    if (i < 0) { hover.hidden = true; canvas.style.cursor = "grab"; return; }
    canvas.style.cursor = "pointer";
    hover.hidden = false;
    hover.style.left = (e.offsetX + 14) + "px"; hover.style.top = (e.offsetY + 14) + "px";
    const img = hover.querySelector("img"), target = url(canvas.dataset.thumb, data.ids[i]);
    if (img.dataset.src !== target) { img.dataset.src = target; img.src = target; }
    hover.querySelector("span").textContent = (data.cluster[i] >= 0 ? "cluster " + data.cluster[i] : "noise") + (data.year[i] ? " · " + data.year[i] : "");
  });
  canvas.addEventListener("mouseleave", () => { hover.hidden = true; });
  window.addEventListener("mouseup", async (e) => {
    if (lassoPath) {
      const poly = lassoPath.map(([x, y]) => toLayout(x, y)); lassoPath = null; draw();
      const chosen = [];
      for (let i = 0; i < xs.length; i++) if (!Number.isNaN(xs[i]) && inside(poly, xs[i], ys[i])) chosen.push(data.ids[i]);
      if (chosen.length < 2) { status.textContent = "Select at least two points."; return; }
      if (!confirm(`Make a proposal of the ${chosen.length} selected artworks?`)) return;
      const response = await fetch(canvas.dataset.lasso, { method: "POST", headers: { "X-CSRFToken": csrf, "Content-Type": "application/json" },
        body: JSON.stringify({ version: data.version, artworks: chosen }) });
      const answer = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
      if (response.ok) location.href = answer.url; else status.textContent = answer.error;
      return;
    }
    if (drag && !drag.moved && e.target === canvas) {
      const i = nearest(drag.start[0], drag.start[1]);
      if (i >= 0) location.href = url(canvas.dataset.artwork, data.ids[i]);
    }
    drag = null;
  });
  async function load() {
    status.textContent = "loading…";
    const response = await fetch(url(canvas.dataset.json, controls.version.value));
    const answer = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
    if (!response.ok) { data = null; status.textContent = answer.error; ctx.clearRect(0, 0, canvas.width, canvas.height); return; }
    data = answer; project(); draw();
    canvas.dataset.points = String(data.ids.length);
    status.textContent = `${data.ids.length.toLocaleString()} artworks` + (data.run ? ` · clusters of run ${data.run}` : "");
  }
  controls.version.addEventListener("change", load);
  controls.layout.addEventListener("change", () => { if (data) { project(); draw(); } });
  controls.colour.addEventListener("change", () => { if (data) draw(); });
  if (controls.version.value) load(); else status.textContent = "No model version yet.";
})();
