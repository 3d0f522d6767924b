// livedance web preview: draws the skeleton streamed over Server-Sent Events (/events) on a 2D canvas
// with a perspective (pinhole) camera that orbits the dancer. Self-contained: no libraries, no CDN.
//
// World frame (as livedance sends it): metres, y up, right-handed, the character faces +z, its left
// side at +x. Camera: eye = target + dist * (sin(yaw) cos(pitch), sin(pitch), cos(yaw) cos(pitch));
// a point p maps to camera coordinates (x, y, z) = ((p - eye).right, (p - eye).up, (p - eye).forward)
// and to the screen at (cx + f x / z, cy - f y / z), f = (height / 2) / tan(fov / 2).
//
// URL parameters: yaw, pitch, fov (degrees), dist (metres), orbit=0|1 (auto-orbit), rate (rad/s),
// once=1 (take one frame from the event stream, then close it: for headless screenshots, whose
// virtual clock waits for open connections).
// Mouse: drag to orbit, wheel to zoom; key r toggles the auto-orbit.
"use strict";
(function () {
  // Colours of the character's left side, right side and centre line (the tests look for the first two).
  const COLORS = { l: "#ff6a3d", r: "#3da5ff", c: "#e6e6e6" };
  const BACKGROUND = "#101216";
  const GRID = "#262a31";
  const params = new URLSearchParams(window.location.search);
  const num = (key, dflt) => {
    const v = parseFloat(params.get(key));
    return Number.isFinite(v) ? v : dflt;
  };
  const DEG = Math.PI / 180;
  const cam = {
    yaw: num("yaw", 25) * DEG,
    pitch: num("pitch", 12) * DEG,
    dist: num("dist", 3.6),
    fov: num("fov", 45) * DEG,
    orbit: params.get("orbit") !== "0",
    rate: num("rate", 0.15),
    target: null,
  };
  const canvas = document.getElementById("view");
  const hud = document.getElementById("hud");
  const ctx = canvas.getContext("2d");
  const title = document.title.replace(/ preview$/, "");
  let frame = null;
  let received = 0;
  let status = "connecting";
  const arrivals = [];

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(window.innerWidth * dpr));
    canvas.height = Math.max(1, Math.round(window.innerHeight * dpr));
  }
  window.addEventListener("resize", resize);
  resize();

  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const norm = (a) => {
    const n = Math.hypot(a[0], a[1], a[2]) || 1;
    return [a[0] / n, a[1] / n, a[2] / n];
  };

  function camera() {
    const t = cam.target || [0, 0.9, 0];
    const cp = Math.cos(cam.pitch);
    const eye = [
      t[0] + cam.dist * Math.sin(cam.yaw) * cp,
      t[1] + cam.dist * Math.sin(cam.pitch),
      t[2] + cam.dist * Math.cos(cam.yaw) * cp,
    ];
    const fwd = norm(sub(t, eye));
    const right = norm(cross(fwd, [0, 1, 0]));
    const up = cross(right, fwd);
    const f = (canvas.height / 2) / Math.tan(cam.fov / 2);
    return { eye, fwd, right, up, f, cx: canvas.width / 2, cy: canvas.height / 2 };
  }

  // Perspective projection of a world point: [sx, sy, depth], or null behind the camera.
  function project(c, p) {
    const d = sub(p, c.eye);
    const z = dot(d, c.fwd);
    if (z < 0.05) return null;
    return [c.cx + (c.f * dot(d, c.right)) / z, c.cy - (c.f * dot(d, c.up)) / z, z];
  }

  function drawGrid(c) {
    const t = cam.target || [0, 0.9, 0];
    const step = 0.5;
    const half = 3;
    const x0 = Math.round(t[0] / step) * step;
    const z0 = Math.round(t[2] / step) * step;
    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = -half; i <= half + 1e-9; i += step) {
      const segs = [
        [[x0 + i, 0, z0 - half], [x0 + i, 0, z0 + half]],
        [[x0 - half, 0, z0 + i], [x0 + half, 0, z0 + i]],
      ];
      for (const [a, b] of segs) {
        const pa = project(c, a);
        const pb = project(c, b);
        if (pa && pb) {
          ctx.moveTo(pa[0], pa[1]);
          ctx.lineTo(pb[0], pb[1]);
        }
      }
    }
    ctx.stroke();
  }

  function drawSkeleton(c) {
    const joints = frame.joints;
    const parents = frame.parents;
    const sides = frame.sides || "";
    const pts = joints.map((p) => project(c, p));
    const hands = joints.length > 25; // SMPL-X: joints 25.. are fingers
    const bones = [];
    for (let j = 0; j < joints.length; j++) {
      const p = parents[j];
      if (p < 0 || !pts[j] || !pts[p]) continue;
      if (hands && j >= 22 && j <= 24) continue; // jaw and eyes: inside the head circle
      bones.push({ j, p, depth: (pts[j][2] + pts[p][2]) / 2 });
    }
    bones.sort((a, b) => b.depth - a.depth); // far first (painter's algorithm)
    ctx.lineCap = "round";
    for (const b of bones) {
      const a = pts[b.p];
      const e = pts[b.j];
      const scale = hands && b.j >= 25 ? 0.012 : 0.035;
      ctx.strokeStyle = COLORS[sides[b.j]] || COLORS.c;
      ctx.lineWidth = Math.min(14, Math.max(1.5, (c.f * scale) / b.depth));
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(e[0], e[1]);
      ctx.stroke();
    }
    // The head: a circle around the head joint (SMPL-X joint 15) when the skeleton has one.
    if (joints.length >= 22 && pts[15]) {
      const h = pts[15];
      ctx.strokeStyle = COLORS.c;
      ctx.lineWidth = Math.max(1.5, (c.f * 0.02) / h[2]);
      ctx.beginPath();
      ctx.arc(h[0], h[1] - (c.f * 0.05) / h[2], (c.f * 0.1) / h[2], 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  function updateHud() {
    const now = performance.now();
    while (arrivals.length && now - arrivals[0] > 1000) arrivals.shift();
    const lines = [
      `${title} preview: ${status}`,
      `frames ${received}   ${arrivals.length} fps` + (frame ? `   seq ${frame.seq}   joints ${frame.joints.length}` : ""),
      `drag: orbit   wheel: zoom   r: auto-orbit ${cam.orbit ? "on" : "off"}`,
    ];
    hud.textContent = lines.join("\n");
  }

  let last = performance.now();
  function render(now) {
    const dt = Math.min(0.1, Math.max(0, (now - last) / 1000));
    last = now;
    if (cam.orbit && !dragging) cam.yaw += cam.rate * dt;
    if (frame) {
      const root = frame.joints[0];
      if (!cam.target) cam.target = [root[0], 0.9, root[2]];
      const k = 1 - Math.exp(-dt * 3);
      cam.target[0] += (root[0] - cam.target[0]) * k;
      cam.target[2] += (root[2] - cam.target[2]) * k;
    }
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const c = camera();
    drawGrid(c);
    if (frame) drawSkeleton(c);
    updateHud();
    window.requestAnimationFrame(render);
  }

  function accept(obj) {
    if (!obj || !Array.isArray(obj.joints) || !Array.isArray(obj.parents)) return;
    frame = obj;
    received += 1;
    arrivals.push(performance.now());
  }

  // Interaction: drag to orbit, wheel to zoom, r toggles the auto-orbit.
  let dragging = false;
  let lastX = 0;
  let lastY = 0;
  canvas.addEventListener("pointerdown", (e) => {
    dragging = true;
    lastX = e.clientX;
    lastY = e.clientY;
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointerup", () => (dragging = false));
  canvas.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    cam.yaw -= (e.clientX - lastX) * 0.01;
    cam.pitch = Math.max(-1.4, Math.min(1.4, cam.pitch + (e.clientY - lastY) * 0.01));
    lastX = e.clientX;
    lastY = e.clientY;
  });
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      cam.dist = Math.max(0.5, Math.min(20, cam.dist * Math.exp(e.deltaY * 0.001)));
    },
    { passive: false }
  );
  window.addEventListener("keydown", (e) => {
    if (e.key === "r" || e.key === "R") cam.orbit = !cam.orbit;
  });

  // Data: the latest frame at once, then the live stream (EventSource reconnects by itself).
  const once = params.get("once") === "1";
  if (!once) {
    fetch("/frame.json", { cache: "no-store" })
      .then((r) => r.json())
      .then(accept)
      .catch(() => {});
  }
  const events = new EventSource("/events");
  events.onopen = () => (status = "live");
  events.onerror = () => (status = "reconnecting");
  events.onmessage = (e) => {
    try {
      accept(JSON.parse(e.data));
    } catch (err) {
      return; // a malformed event is skipped
    }
    if (once) {
      events.close();
      status = "one frame received (once=1), stream closed";
    }
  };
  window.requestAnimationFrame(render);
})();
