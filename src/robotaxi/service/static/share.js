// A shared ride: someone a rider sent a link to follows the car and the ETA (read only).
"use strict";

(() => {
  const { api, duration, RoadMap, carMarker } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const map = new RoadMap($("map"), { label: "City map of the shared ride" });
  const POLL_MS = 2000;

  function render(ride) {
    $("shared-status").textContent = ride.status_text;
    $("shared-status").dataset.state = ride.state;
    $("shared-from").textContent = ride.pickup_name || "–";
    $("shared-to").textContent = ride.dropoff_name || "–";
    $("shared-car").textContent = ride.vehicle_id || "–";
    $("shared-eta").textContent = ride.eta_s === null ? "–" : duration(ride.eta_s);
    const markers = [];
    if (ride.pickup_curb && !ride.over) markers.push({ ...ride.pickup_curb, color: "#1a7f37", label: "pick-up" });
    if (ride.dropoff_curb) markers.push({ ...ride.dropoff_curb, color: "#8250df", label: "destination" });
    if (ride.vehicle) {
      markers.push(carMarker(ride.vehicle, ride.vehicle_id));
    }
    map.set({ routes: [], markers });
  }

  async function poll() {
    try {
      const ride = await api(`/api/shared/${encodeURIComponent(token)}`);
      $("shared-error").textContent = "";
      render(ride);
      if (ride.over) return; // nothing moves any more
    } catch (err) {
      $("shared-status").textContent = "";
      $("shared-error").textContent = err.message;
      if (err.status === 404) return;
    }
    setTimeout(poll, POLL_MS);
  }

  map.load().then(poll, (err) => {
    $("shared-error").textContent = err.message;
  });
})();
