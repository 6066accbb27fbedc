// The in-car screen: greeting, seat belt, Start ride, route and ETA, what is around, Help.
"use strict";

(() => {
  const { api, rider, operatorToken, duration, STATE_TEXT, RoadMap, carMarker } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const vehicleId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const map = new RoadMap($("map"), { label: `Map around car ${vehicleId} with its route` });
  // the car's state and driving mode, said to its rider
  const CAR_TEXT = {
    idle: "parked",
    rebalancing: "moving to a new spot",
    to_pickup: "on the way to the pick-up",
    at_pickup: "at the pick-up",
    to_dropoff: "on the way to the destination",
    at_dropoff: "at the destination",
    to_charger: "on the way to charge",
    charging: "charging",
  };
  const BEHAVIOUR_TEXT = {
    lane_follow: "following its lane",
    car_follow: "following the car ahead",
    stop_at_line: "stopping at the line",
    leave_curb: "leaving the kerb",
    curbside_stop: "stopping at the kerb",
    yield_to_ev: "pulling over for an emergency vehicle",
    ev_caution: "slowing for a siren",
    safe_stop: "stopped to stay safe",
    pass_blocker: "passing a blocked lane",
  };
  const KIND_TEXT = { car: "car", robotaxi: "robotaxi", pedestrian: "person walking", emergency: "emergency vehicle", unknown: "road user" };
  let screen = null;
  let spokenFor = null;
  let busy = false;

  function token() {
    const r = rider();
    return r ? r.token : operatorToken();
  }

  // What the roof microphones hear, said in words (heard before seen, when it was)
  function hearingText(h) {
    if (!h) return "no microphones on this car";
    if (h.heard_before_seen_s !== null) {
      return `siren heard ${h.heard_before_seen_s.toFixed(0)} s before the ambulance came into view`;
    }
    if (h.siren_heard) {
      return h.ev_seen_since_s === null
        ? "siren heard — not in sight yet" : "siren heard — ambulance in sight";
    }
    return "listening — no siren";
  }

  function speak(text) {
    if (!("speechSynthesis" in window)) return;
    try {
      const utterance = new SpeechSynthesisUtterance(text);
      window.speechSynthesis.speak(utterance);
    } catch (_) {
      // speech is a courtesy: the live region already announced the greeting
    }
  }

  // The server's voice (a WAV made by espeak-ng) when it has one; else the browser's.
  async function greet(rideId, text) {
    const voice = $("greeting");
    try {
      const response = await fetch(`/api/rides/${encodeURIComponent(rideId)}/greeting.wav`, {
        headers: { Authorization: `Bearer ${token()}` },
      });
      if (!response.ok) throw new Error(`greeting answered ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const audio = new Audio(url);
      audio.addEventListener("ended", () => URL.revokeObjectURL(url), { once: true });
      voice.dataset.voice = "server";
      await audio.play();
    } catch (_) {
      // no espeak-ng on the server, or the browser will not play sound unprompted
      voice.dataset.voice = "browser";
      speak(text);
    }
  }

  function render(s) {
    screen = s;
    const ride = s.ride;
    $("car-id").textContent = s.vehicle_id;
    // a live region: written only when it changes, so it is announced once
    const carText = CAR_TEXT[s.status] || s.status.replace(/_/g, " ");
    if ($("car-state").textContent !== carText) $("car-state").textContent = carText;
    const greeting = ride && ride.greeting && !["completed", "cancelled", "interrupted"].includes(ride.state) ? ride.greeting : "";
    if ($("greeting").textContent !== greeting) $("greeting").textContent = greeting;
    if (greeting && ride && spokenFor !== ride.id) {
      spokenFor = ride.id;
      greet(ride.id, greeting);
    }
    $("ride-status").textContent = ride ? STATE_TEXT[ride.state] || ride.state : "No ride in this car for you";
    $("ride-status").dataset.state = ride ? ride.state : "";
    const active = ride && ride.live;
    $("board").disabled = !(active && ride.state === "arrived" && ride.unlocked);
    const belt = $("seatbelt");
    belt.disabled = !(active && ["arrived", "boarded", "started", "driving"].includes(ride.state));
    if (!busy) belt.checked = Boolean(ride && ride.buckled);
    $("start").disabled = !(active && ride.can_start);
    $("start-reason").textContent = active && ride.state !== "driving" && ride.start_blocked_reason
      ? `Start ride: ${ride.start_blocked_reason}` : "";
    $("pull-over").disabled = !(active && ride.state === "driving");
    $("eta").textContent = ride && ride.eta_s !== null ? duration(ride.eta_s) : "–";
    $("destination").textContent = (ride && ride.dropoff_name) || "–";
    $("speed").textContent = `${(s.speed_mps * 3.6).toFixed(0)} km/h`;
    const angle = s.steering.angle_deg;
    const wheel = $("wheel");
    wheel.hidden = angle === null;
    if (angle === null) {
      $("steering").textContent = s.steering.note;
    } else {
      // the glyph turns like the wheel seen from the seat: left (positive) is anticlockwise
      wheel.style.transform = `rotate(${-angle}deg)`;
      const side = Math.abs(angle) < 0.5 ? "straight ahead" : angle > 0 ? "left" : "right";
      $("steering").textContent = `${Math.abs(angle).toFixed(0)}° ${side}`;
      $("steering").title = s.steering.note;
    }
    $("behaviour").textContent = s.behaviour ? BEHAVIOUR_TEXT[s.behaviour] || s.behaviour.replace(/_/g, " ") : "–";
    const banner = $("ev-banner");
    banner.hidden = !s.emergency_banner;
    // set only on change: a live region re-reads its text each time it is written
    if (banner.textContent !== (s.emergency_banner || "")) banner.textContent = s.emergency_banner || "";
    banner.dataset.state = s.emergency_state || "";
    $("hearing").textContent = hearingText(s.hearing);
    $("where").textContent = s.place_name || "–";
    $("nearby-source").textContent = s.nearby_note;
    $("nearby-source").dataset.source = s.nearby_source;
    const list = $("nearby");
    list.innerHTML = "";
    if (!s.nearby.length) {
      const li = document.createElement("li");
      li.textContent = "nothing within 60 m";
      list.append(li);
    }
    for (const n of s.nearby.slice(0, 12)) {
      const li = document.createElement("li");
      li.textContent = `${KIND_TEXT[n.kind] || n.kind}: ${Math.round(n.distance_m)} m away, ${(n.speed_mps * 3.6).toFixed(0)} km/h`;
      list.append(li);
    }
    const markers = s.nearby.map((n) => ({
      lat: n.lat,
      lon: n.lon,
      radius: 4,
      color: n.kind === "emergency" ? "#f0a500" : "#57606a",
    }));
    if (ride && ride.dropoff_curb) markers.push({ ...ride.dropoff_curb, color: "#8250df", label: "destination" });
    if (ride && ride.pickup_curb && ["assigned", "en_route"].includes(ride.state)) {
      markers.push({ ...ride.pickup_curb, color: "#1a7f37", label: "pick-up" });
    }
    markers.push(carMarker(s.position, s.vehicle_id));
    map.set({ routes: s.route.length ? [{ line: s.route }] : [], markers });
  }

  async function refresh() {
    try {
      render(await api(`/api/vehicles/${encodeURIComponent(vehicleId)}/screen`, { token: token() }));
      $("action-error").textContent = "";
    } catch (err) {
      $("car-state").textContent = err.status === 401 ? "sign in on the rider app first" : err.message;
    }
  }

  async function act(path, body) {
    if (!screen || !screen.ride) return;
    $("action-error").textContent = "";
    busy = true;
    try {
      await api(`/api/rides/${encodeURIComponent(screen.ride.id)}/${path}`, { method: "POST", token: token(), body });
      await refresh();
    } catch (err) {
      $("action-error").textContent = err.message;
    } finally {
      busy = false;
    }
  }

  $("board").addEventListener("click", () => act("board"));
  $("seatbelt").addEventListener("change", (e) => act("buckle", { buckled: e.target.checked }));
  $("start").addEventListener("click", () => act("start"));
  $("pull-over").addEventListener("click", () => act("pull-over"));
  $("help").addEventListener("click", () => {
    $("help-panel").hidden = false;
    $("help-text").focus();
  });
  $("cancel-help").addEventListener("click", () => {
    $("help-panel").hidden = true;
  });
  // Help: a common reason files a ticket at once; "Other" asks for words first. The ride
  // (and so the car) is attached, so support knows where the rider is.
  async function fileTicket(text, topic) {
    try {
      const ticket = await api("/api/tickets", {
        method: "POST",
        token: token(),
        body: { text, topic, ride_id: screen && screen.ride ? screen.ride.id : null },
      });
      const safety = topic === "safety"
        ? " If you are in danger, press Pull over; the car stops at the next safe place." : "";
      $("help-result").textContent = `Support ticket ${ticket.id} sent: support will answer here and in the app.${safety}`;
      $("help-text").value = "";
      refreshSupport();
    } catch (err) {
      $("help-result").textContent = err.message;
    }
  }

  for (const button of document.querySelectorAll("#help-topics button")) {
    button.addEventListener("click", () => {
      const { topic, text } = button.dataset;
      if (!text) {
        $("help-text").focus();
        $("help-result").textContent = "Tell us what is wrong, then press Send to support.";
        return;
      }
      const more = $("help-text").value.trim();
      fileTicket(more ? `${text}: ${more}` : text, topic);
    });
  }
  $("send-help").addEventListener("click", () => {
    const text = $("help-text").value.trim() || `Help requested in car ${vehicleId}`;
    fileTicket(text, "other");
  });

  // Support's replies to this ride's tickets, shown to whoever sits in the car
  const SUPPORT_STATUS = { open: "waiting for support", answered: "support replied", closed: "closed" };
  let supportShown = "";
  async function refreshSupport() {
    const ride = screen && screen.ride;
    if (!ride) return;
    let tickets;
    try {
      tickets = await api(`/api/tickets?ride_id=${encodeURIComponent(ride.id)}`, { token: token() });
    } catch (_) {
      return; // the next round tries again
    }
    const lines = [];
    for (const t of tickets) {
      lines.push({ who: "You", text: t.text, note: SUPPORT_STATUS[t.status] || t.status });
      for (const m of t.messages) {
        if (m.text) lines.push({ who: m.author === "operator" ? "Support" : "You", text: m.text });
      }
    }
    const key = JSON.stringify(lines);
    if (key === supportShown) return; // the live region speaks only what is new
    supportShown = key;
    const list = $("support-replies");
    list.innerHTML = "";
    for (const line of lines) {
      const li = document.createElement("li");
      li.dataset.author = line.who === "Support" ? "operator" : "rider";
      li.textContent = `${line.who}: ${line.text}${line.note ? ` (${line.note})` : ""}`;
      list.append(li);
    }
    $("support-panel").hidden = lines.length === 0;
  }

  map.load().then(() => {
    refresh();
    setInterval(refresh, 500);
    setInterval(refreshSupport, 3000);
  });
})();
