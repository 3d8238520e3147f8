// The Disks page (admin): every disk's health, space and state, ejecting one safely, initialising a new one.
import { api, el, onCleanup } from "./app.js";

const STATE_TEXT = { recording: "recording", missing: "missing", ejected: "ejected · safe to unplug",
                     ejecting: "ejecting…", failed: "failed", foreign: "foreign (not written to)" };

function size(bytes) {
  if (bytes == null) return "—";
  for (const [unit, scale] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) if (bytes >= scale) return `${(bytes / scale).toFixed(1)} ${unit}`;
  return `${bytes} B`;
}

function message(node, text, ok = false) { node.className = ok ? "ok" : "error"; node.textContent = text; }

function healthBadge(d) {
  const h = String(d.health || "unknown"), bad = h.startsWith("failing");
  return el("span", { class: `badge ${bad ? "bad" : h === "passed" ? "good" : ""}`, title: d.smart_error || "" }, h);
}

function stateBadge(d) {
  const s = d.shown_state;
  return el("span", { class: `badge ${s === "recording" ? "good" : s === "ejected" ? "" : "bad"}`, title: d.reason || d.error || "" },
    STATE_TEXT[s] || s);
}

function errorsText(d) {
  const parts = [`${d.io_errors || 0} I/O`];
  for (const [key, name] of [["reallocated_sectors", "reallocated"], ["pending_sectors", "pending"], ["uncorrectable_sectors", "uncorrectable"]])
    if (d[key]) parts.push(`${d[key]} ${name}`);
  return parts.join(", ");
}

// "at today's rate this disk holds N days": the days (and what limits them) in the cell, the sentence on hover.
function holds(d) {
  const p = d.retention_preview;
  if (!p) return "—";
  if (p.error) return el("span", { class: "error" }, p.error);
  const text = p.days != null ? `${p.days} days (${p.limited_by})` : "too little recorded yet";
  return el("span", { title: p.sentence || "" }, text);
}

function diskRow(d, eject) {
  const name = d.label ? `${d.label} (${d.path})` : d.path;
  const role = d.role + (d.group ? ` · group ${d.group}` : "");
  const rate = d.write_rate_bytes_per_s == null ? "—" : `${size(d.write_rate_bytes_per_s)}/s`;
  const action = d.label && d.shown_state === "recording"
    ? el("button", { type: "button", "data-eject": d.label, onclick: (ev) => eject(d.label, ev.target) }, "Eject") : "";
  return el("tr", { "data-disk": d.label || d.path },
    el("td", {}, name), el("td", {}, [d.device, d.model].filter(Boolean).join(" ") || "—"), el("td", { class: "serial" }, d.serial || "—"),
    el("td", {}, size(d.capacity_bytes || d.total_bytes)), el("td", { class: "health" }, healthBadge(d)),
    el("td", { class: "temperature" }, d.temperature_c != null ? `${d.temperature_c} °C` : "—"),
    el("td", {}, d.power_on_hours != null ? `${d.power_on_hours} h` : "—"),
    el("td", {}, d.free_bytes != null ? `${size(d.free_bytes)} (${d.used_percent} % used)` : "—"),
    el("td", {}, role), el("td", { class: "state" }, stateBadge(d)), el("td", { class: "holds" }, holds(d)), el("td", { class: "rate" }, rate),
    el("td", {}, errorsText(d)), el("td", {}, action));
}

function contentsText(dev) {
  if (dev.mounted.length) return `in use: mounted on ${dev.mounted.join(", ")}`;
  if (dev.contents_error) return dev.contents_error;
  if (!dev.contents || !dev.contents.length) return "blank";
  return dev.contents.map((c) => `${c.kind}${c.label ? ` '${c.label}'` : ""} on ${c.on}`).join(", ");
}

export async function disksPage(page) {
  const table = el("tbody", { id: "disks" }), status = el("p", { id: "disks-status", role: "status" });
  const devices = el("tbody", { id: "disk-devices" }), initOut = el("p", { id: "init-message", role: "status" });
  const bar = el("progress", { id: "init-progress", max: 1, value: 0, hidden: true });
  const refresh = el("button", { type: "button", id: "devices-refresh" }, "Look again");
  const head = (...names) => el("thead", {}, el("tr", {}, ...names.map((t) => el("th", {}, t))));
  page.append(el("h2", {}, "Disks"), status,
    el("div", { class: "scroll" }, el("table", { id: "disks-table" }, head("Disk", "Device", "Serial", "Size", "Health", "Temp",
      "Power-on", "Free", "Role", "State", "Holds", "Writes", "Errors", ""), table)),
    el("h3", {}, "Initialise a disk"),
    el("p", { class: "muted" }, "Makes a whole disk one ext4 filesystem with a label and an identity file. A disk with anything on it " +
      "(a partition table, a filesystem) is erased only if you type its serial number. Then mount it and list it in storage.disks."),
    el("div", { class: "scroll" }, el("table", { id: "devices-table" }, head("Device", "Size", "Model", "Serial", "On it", ""), devices)),
    el("div", { class: "row" }, refresh), bar, initOut);

  let busy = false;  // an eject or an initialisation is under way: the periodic refresh leaves the rows alone
  async function eject(label, button) {
    busy = true; button.disabled = true; button.textContent = "Ejecting…";
    message(status, `Ejecting ${label}: ending its segments at the next keyframe, then unmounting…`, true);
    try {
      const r = await api(`/api/disks/${encodeURIComponent(label)}/eject`, { method: "POST" });
      if (r.safe_to_unplug) message(status, `${label} is unmounted: safe to unplug. (${r.message})`, true);
      else message(status, `${label} was not unmounted: ${r.message}`);
    } catch (e) { message(status, e.message); }
    busy = false;
    await load();
  }
  async function load() {
    const rows = await api("/api/disks");
    if (!busy) table.replaceChildren(...rows.map((d) => diskRow(d, eject)));
  }
  async function loadDevices() {
    const list = await api("/api/disks/devices");
    devices.replaceChildren(...list.map((dev) => deviceRow(dev, initialise)));
    if (!list.length) devices.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No disk found.")));
  }
  async function initialise(dev, label, serial, button) {
    button.disabled = true; initOut.textContent = ""; bar.hidden = false; bar.value = 0;
    try {
      let job = await api("/api/disks/init", { method: "POST", body: { device: dev.device, label, confirm_serial: serial || null } });
      while (job.state === "running") {
        bar.value = job.steps_done / job.steps_total;
        message(initOut, `${dev.device}: ${job.step}…`, true);
        await new Promise((resolve) => setTimeout(resolve, 400));
        job = await api(`/api/disks/init/${job.id}`);
      }
      bar.value = job.state === "done" ? 1 : bar.value;
      if (job.state === "done") message(initOut, `${dev.device} is now the recordings disk '${job.label}' (identity ${job.result.uuid}). Mount it and list it in storage.disks.`, true);
      else message(initOut, job.error);
    } catch (e) { bar.hidden = true; message(initOut, e.message); }
    button.disabled = false;
    await loadDevices();
  }
  refresh.addEventListener("click", () => loadDevices().catch((e) => message(initOut, e.message)));
  const timer = setInterval(() => load().catch(() => {}), 5000);
  onCleanup(() => clearInterval(timer));
  await load();
  await loadDevices();
}

function deviceRow(dev, initialise) {
  const blank = !dev.mounted.length && dev.contents && !dev.contents.length;
  let action = "";
  if (!dev.mounted.length && !dev.read_only) {
    const label = el("input", { name: "label", placeholder: "label", maxlength: 32, required: true, autocomplete: "off" });
    const serial = blank ? null : el("input", { name: "serial", placeholder: "type its serial to erase it", autocomplete: "off" });
    const go = el("button", { type: "submit" }, blank ? "Initialise" : "Erase and initialise");
    action = el("form", { class: "row", "data-device": dev.device }, label, serial, go);
    action.addEventListener("submit", (ev) => { ev.preventDefault(); initialise(dev, label.value.trim(), serial ? serial.value.trim() : "", go); });
  }
  return el("tr", { "data-device": dev.device }, el("td", {}, dev.device), el("td", {}, size(dev.size_bytes)), el("td", {}, dev.model || "—"),
    el("td", {}, dev.serial || "—"), el("td", {}, contentsText(dev)), el("td", {}, action));
}
