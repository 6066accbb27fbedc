// Shared by the rider app, the in-car screen and the operations view: API calls, the live
// stream reader and the road map drawn on a <canvas> from /api/map (no tiles, works offline).
"use strict";

const Robotaxi = (() => {
  const RIDER_KEY = "robotaxi.rider";
  const OPERATOR_KEY = "robotaxi.operator";

  function rider() {
    try {
      return JSON.parse(localStorage.getItem(RIDER_KEY) || "null");
    } catch (_) {
      return null;
    }
  }

  function saveRider(value) {
    if (value) localStorage.setItem(RIDER_KEY, JSON.stringify(value));
    else localStorage.removeItem(RIDER_KEY);
  }

  function operatorToken() {
    return sessionStorage.getItem(OPERATOR_KEY) || "";
  }

  function saveOperatorToken(token) {
    if (token) sessionStorage.setItem(OPERATOR_KEY, token);
    else sessionStorage.removeItem(OPERATOR_KEY);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailText(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const where = (d.loc || []).filter((p) => p !== "body").join(".");
          return where ? `${where}: ${d.msg}` : d.msg;
        })
        .join("; ");
    }
    return JSON.stringify(detail);
  }

  async function api(path, { method = "GET", body = undefined, token = "" } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = { detail: text };
      }
    }
    if (!response.ok) {
      throw new ApiError(response.status, detailText(data && data.detail));
    }
    return data;
  }

  // Server-sent events over fetch, so the token travels in a header and never in a URL.
  async function stream(path, token, onEvent, signal) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      signal,
    });
    if (!response.ok || !response.body) throw new ApiError(response.status, "stream refused");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trim());
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m ? `${m} min ${s % 60} s` : `${s} s`;
  }

  // metres between two {lat, lon} points (equirectangular: exact enough within a city)
  function metresBetween(a, b) {
    const k = Math.PI / 180;
    const dx = (b.lon - a.lon) * k * Math.cos(((a.lat + b.lat) / 2) * k);
    const dy = (b.lat - a.lat) * k;
    return 6371000 * Math.hypot(dx, dy);
  }

  function distance(metres) {
    if (metres === null || metres === undefined) return "–";
    return metres >= 1000 ? `${(metres / 1000).toFixed(2)} km` : `${Math.round(metres)} m`;
  }

  const STATE_TEXT = {
    requested: "Looking for a car…",
    assigned: "A car is assigned",
    en_route: "Your car is on its way",
    arrived: "Your car is here",
    boarded: "On board: fasten your seat belt, then press Start ride",
    started: "Starting the ride",
    driving: "On the way to your destination",
    pulled_over: "Pulling over",
    arrived_at_destination: "You have arrived",
    completed: "Ride complete",
    cancelled: "Ride cancelled",
    interrupted: "Ride interrupted: we are sorry. You are not charged for it",
  };

  // --- the map -----------------------------------------------------------------------------
  const SUFFIX = {
    Street: "St", Avenue: "Ave", Boulevard: "Blvd", Drive: "Dr", Road: "Rd", Place: "Pl",
    Lane: "Ln", Court: "Ct", Terrace: "Ter", Highway: "Hwy", Parkway: "Pkwy", Alley: "Aly",
  };

  // "Valencia Street" → "Valencia St"; the first of several names ("19th Avenue, CA 1")
  function shortStreet(name) {
    const words = String(name || "").split(/[;,]/)[0].trim().split(/\s+/).filter(Boolean);
    if (words.length > 1 && SUFFIX[words[words.length - 1]]) words[words.length - 1] = SUFFIX[words[words.length - 1]];
    return words.join(" ");
  }

  // One label per street name: anchored on the street nearest the middle of all its points,
  // turned along its main direction; `extent` (degrees) is how long the street runs that way.
  function streetLabels(roads, bounds) {
    const kx = Math.cos(((bounds.south + bounds.north) / 2) * (Math.PI / 180));
    const byName = new Map();
    for (const road of roads) {
      const text = shortStreet(road.name);
      if (!text) continue;
      if (!byName.has(text)) byName.set(text, []);
      for (const p of road.line) byName.get(text).push(p);
    }
    const labels = [];
    for (const [text, pts] of byName) {
      let mx = 0;
      let my = 0;
      for (const [lat, lon] of pts) {
        mx += lon * kx;
        my += lat;
      }
      mx /= pts.length;
      my /= pts.length;
      let sxx = 0;
      let syy = 0;
      let sxy = 0;
      for (const [lat, lon] of pts) {
        const dx = lon * kx - mx;
        const dy = lat - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
      }
      const theta = 0.5 * Math.atan2(2 * sxy, sxx - syy); // main direction, east = 0, north up
      const ux = Math.cos(theta);
      const uy = Math.sin(theta);
      let lo = Infinity;
      let hi = -Infinity;
      let best = pts[0];
      let bestD = Infinity;
      for (const p of pts) {
        const dx = p[1] * kx - mx;
        const dy = p[0] - my;
        const t = dx * ux + dy * uy;
        lo = Math.min(lo, t);
        hi = Math.max(hi, t);
        const d = dx * dx + dy * dy;
        if (d < bestD) {
          bestD = d;
          best = p;
        }
      }
      let angle = -theta; // canvas y points down
      if (angle > Math.PI / 2) angle -= Math.PI;
      if (angle < -Math.PI / 2) angle += Math.PI;
      labels.push({ text, lat: best[0], lon: best[1], angle, extent: hi - lo });
    }
    return labels.sort((a, b) => b.extent - a.extent || (a.text < b.text ? -1 : 1));
  }

  // a car on the map: `where` has lat, lon and heading_deg (compass degrees)
  function carMarker(where, label, { radius = 9, color = "#d1242f" } = {}) {
    return { lat: where.lat, lon: where.lon, heading: where.heading_deg, shape: "car", radius, color, label };
  }

  class RoadMap {
    constructor(canvas, { onPick = null, label = "Map" } = {}) {
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.onPick = onPick;
      this.roads = [];
      this.bounds = null;
      this.layers = { routes: [], markers: [] };
      this.cursor = null;
      canvas.setAttribute("role", "application");
      canvas.setAttribute("aria-label", label);
      canvas.tabIndex = 0;
      canvas.addEventListener("click", (e) => this._click(e));
      canvas.addEventListener("keydown", (e) => this._key(e));
      window.addEventListener("resize", () => this.draw());
    }

    async load() {
      const data = await api("/api/map");
      this.roads = data.roads;
      this.bounds = data.bounds;
      this.streetLabels = streetLabels(data.roads, data.bounds);
      this.cursor = {
        lat: (this.bounds.south + this.bounds.north) / 2,
        lon: (this.bounds.west + this.bounds.east) / 2,
      };
      this.draw();
      return data;
    }

    _frame() {
      const rect = this.canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(rect.width, 50);
      const h = Math.max(rect.height, 50);
      if (this.canvas.width !== Math.round(w * dpr)) this.canvas.width = Math.round(w * dpr);
      if (this.canvas.height !== Math.round(h * dpr)) this.canvas.height = Math.round(h * dpr);
      const b = this.bounds;
      const kx = Math.cos(((b.south + b.north) / 2) * (Math.PI / 180));
      const spanX = (b.east - b.west) * kx;
      const spanY = b.north - b.south;
      const pad = 12;
      const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
      const ox = (w - spanX * scale) / 2;
      const oy = (h - spanY * scale) / 2;
      return { w, h, dpr, kx, scale, ox, oy };
    }

    toPixel(lat, lon) {
      const f = this._frame();
      return [f.ox + (lon - this.bounds.west) * f.kx * f.scale, f.oy + (this.bounds.north - lat) * f.scale];
    }

    toLatLon(px, py) {
      const f = this._frame();
      return {
        lat: this.bounds.north - (py - f.oy) / f.scale,
        lon: this.bounds.west + (px - f.ox) / (f.kx * f.scale),
      };
    }

    set(layers) {
      Object.assign(this.layers, layers);
      this.draw();
    }

    draw() {
      if (!this.bounds) return;
      const f = this._frame();
      const ctx = this.ctx;
      ctx.setTransform(f.dpr, 0, 0, f.dpr, 0, 0);
      ctx.fillStyle = "#f4f1ea";
      ctx.fillRect(0, 0, f.w, f.h);
      ctx.strokeStyle = "#b9b4a8";
      ctx.lineWidth = 2;
      ctx.lineCap = "round";
      for (const road of this.roads) this._line(road.line);
      this._labels(f);
      for (const route of this.layers.routes) {
        ctx.strokeStyle = route.color || "#1f6feb";
        ctx.lineWidth = route.width || 4;
        this._line(route.line);
      }
      for (const m of this.layers.markers) this._marker(m);
      if (this.cursor && document.activeElement === this.canvas) {
        const [x, y] = this.toPixel(this.cursor.lat, this.cursor.lon);
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(x - 10, y);
        ctx.lineTo(x + 10, y);
        ctx.moveTo(x, y - 10);
        ctx.lineTo(x, y + 10);
        ctx.stroke();
      }
    }

    // Street names along their streets, longest streets first, each only where it fits
    // along the street's drawn length and does not overlap a name already drawn.
    _labels(f) {
      const ctx = this.ctx;
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      const boxes = [];
      for (const label of this.streetLabels || []) {
        const room = label.extent * f.scale;
        if (room < 40 || boxes.length >= 250) break; // sorted by extent: none further fits
        const width = ctx.measureText(label.text).width;
        if (width + 16 > room) continue;
        const [x, y] = this.toPixel(label.lat, label.lon);
        const half = Math.abs(Math.cos(label.angle)) * width / 2 + 7;
        const halfY = Math.abs(Math.sin(label.angle)) * width / 2 + 7;
        const box = [x - half, y - halfY, x + half, y + halfY];
        if (boxes.some((b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3])) continue;
        boxes.push(box);
        ctx.save();
        ctx.translate(x, y);
        ctx.rotate(label.angle);
        ctx.lineWidth = 3;
        ctx.strokeStyle = "rgba(244, 241, 234, 0.9)";
        ctx.strokeText(label.text, 0, 0);
        ctx.fillStyle = "#4a463e";
        ctx.fillText(label.text, 0, 0);
        ctx.restore();
      }
      ctx.textAlign = "start";
      ctx.textBaseline = "alphabetic";
    }

    _line(points) {
      if (!points || points.length < 2) return;
      const ctx = this.ctx;
      ctx.beginPath();
      points.forEach(([lat, lon], i) => {
        const [x, y] = this.toPixel(lat, lon);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }

    _marker(m) {
      const ctx = this.ctx;
      const [x, y] = this.toPixel(m.lat, m.lon);
      const r = m.radius || 7;
      ctx.fillStyle = m.color || "#d1242f";
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      if (m.shape === "car" && m.heading !== undefined) {
        const a = ((m.heading - 90) * Math.PI) / 180; // compass → canvas angle
        ctx.moveTo(x + Math.cos(a) * r * 1.4, y + Math.sin(a) * r * 1.4);
        ctx.lineTo(x + Math.cos(a + 2.4) * r, y + Math.sin(a + 2.4) * r);
        ctx.lineTo(x + Math.cos(a - 2.4) * r, y + Math.sin(a - 2.4) * r);
        ctx.closePath();
      } else {
        ctx.arc(x, y, r, 0, 2 * Math.PI);
      }
      ctx.fill();
      ctx.stroke();
      if (m.label) {
        ctx.fillStyle = "#111";
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText(m.label, x + r + 3, y - r);
      }
    }

    _click(event) {
      if (!this.onPick || !this.bounds) return;
      const rect = this.canvas.getBoundingClientRect();
      const where = this.toLatLon(event.clientX - rect.left, event.clientY - rect.top);
      this.cursor = where;
      this.onPick(where);
    }

    // Keyboard: arrows move a cross-hair (shift = faster), Enter or Space picks the point.
    _key(event) {
      if (!this.bounds || !this.cursor) return;
      const stepLat = (this.bounds.north - this.bounds.south) / (event.shiftKey ? 10 : 50);
      const stepLon = (this.bounds.east - this.bounds.west) / (event.shiftKey ? 10 : 50);
      const moves = {
        ArrowUp: [stepLat, 0],
        ArrowDown: [-stepLat, 0],
        ArrowLeft: [0, -stepLon],
        ArrowRight: [0, stepLon],
      };
      if (moves[event.key]) {
        this.cursor.lat += moves[event.key][0];
        this.cursor.lon += moves[event.key][1];
        event.preventDefault();
        this.draw();
      } else if ((event.key === "Enter" || event.key === " ") && this.onPick) {
        event.preventDefault();
        this.onPick({ ...this.cursor });
      }
    }
  }

  return {
    api,
    metresBetween,
    ApiError,
    stream,
    rider,
    saveRider,
    operatorToken,
    saveOperatorToken,
    duration,
    distance,
    STATE_TEXT,
    RoadMap,
    carMarker,
    shortStreet,
  };
})();
