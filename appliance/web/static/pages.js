// The smaller pages: export, PTZ, alarms, health, config and users.
import { api, el, fmtTime, isoLocal, may, onCleanup, state } from "./app.js";
import { liveTile } from "./live.js";
import { intercomCard } from "./intercom.js";

function channelSelect(id, filter = () => true) {
  return el("select", { id }, ...state.channels.filter(filter).map((c) => el("option", { value: c.id }, `${c.id} · ${c.name}`)));
}

function message(node, text, ok = false) { node.className = ok ? "ok" : "error"; node.textContent = text; }

export async function exportPage(page, [channel, fromUs] = []) {
  const now = Date.now(), from = fromUs ? Number(fromUs) / 1000 : null;  // from the playback page: #/export/CH/US
  const ch = channelSelect("ex-channel");
  if (channel) ch.value = channel;
  const start = el("input", { type: "datetime-local", id: "ex-start", step: 1, value: isoLocal(from ?? now - 5 * 60e3) });
  const end = el("input", { type: "datetime-local", id: "ex-end", step: 1, value: isoLocal(from ? from + 60e3 : now - 60e3) });
  const go = el("button", { type: "submit", id: "ex-go" }, "Export");
  const bar = el("progress", { id: "ex-progress", max: 1, value: 0, hidden: true });
  const out = el("p", { id: "ex-message", role: "status" }), link = el("p", { id: "ex-link" });
  const form = el("form", { class: "card" }, el("div", { class: "row" }, el("label", {}, "Channel ", ch),
    el("label", {}, "From ", start), el("label", {}, "To ", end)), go, bar, out, link);
  page.append(el("h2", {}, "Export"), el("p", { class: "muted" }, "One MP4 of the range, copied from the recording without re-encoding."), form);
  let timer = null;
  onCleanup(() => clearInterval(timer));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.textContent = ""; link.replaceChildren(); go.disabled = true;
    try {
      const job = await api("/api/exports", { method: "POST", body: {
        channel: Number(ch.value), start: new Date(start.value).toISOString(), end: new Date(end.value).toISOString() } });
      bar.hidden = false; bar.value = 0;
      timer = setInterval(async () => {
        const j = await api(`/api/exports/${job.id}`).catch((e) => ({ state: "failed", error: e.message }));
        bar.value = j.progress || 0;
        if (j.state === "done") {
          clearInterval(timer); go.disabled = false; bar.value = 1;
          message(out, `Done: ${j.frames} frames, ${(j.total_bytes / 1e6).toFixed(1)} MB.`, true);
          link.append(el("a", { href: j.download, id: "ex-download", download: "" }, "Download MP4"));
        } else if (j.state === "failed") {
          clearInterval(timer); go.disabled = false; message(out, j.error);
        }
      }, 300);
    } catch (e) { go.disabled = false; message(out, e.message); }
  });
}

export async function ptzPage(page) {
  const ch = channelSelect("ptz-channel");
  const status = el("p", { id: "ptz-status", role: "status" });
  const view = el("div", { class: "grid" });
  page.append(el("h2", {}, "PTZ"), el("div", { class: "row" }, el("label", {}, "Channel ", ch)), status, view);
  let tile = null;
  const send = async (body) => {
    try { await api(`/api/ptz/${ch.value}`, { method: "POST", body }); message(status, `${body.action} sent`, true); }
    catch (e) { message(status, e.message); }
  };
  const hold = (label, move) => {
    const b = el("button", { type: "button", "data-ptz": label }, label);
    // The button keeps the pointer until it is released: the live tile above it can grow when its video
    // starts and move the pad from under a held finger, which must not read as "let go". A lost capture
    // (the page hidden, the pointer cancelled) stops the camera as a release does, once.
    let held = false;
    const release = () => { if (held) { held = false; send({ action: "stop" }); } };
    b.addEventListener("pointerdown", (e) => {
      held = true;
      try { b.setPointerCapture(e.pointerId); } catch { /* not capturable: release still ends the move */ }
      send(move);
    });
    for (const evName of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(evName, release);
    return b;
  };
  const pad = el("div", { class: "ptz" },
    el("span"), hold("▲", { action: "move", tilt: 0.5 }), el("span"),
    hold("◀", { action: "move", pan: -0.5 }), el("button", { type: "button", "data-ptz": "stop", onclick: () => send({ action: "stop" }) }, "■"),
    hold("▶", { action: "move", pan: 0.5 }),
    hold("−", { action: "zoom", zoom: -0.5 }), hold("▼", { action: "move", tilt: -0.5 }), hold("+", { action: "zoom", zoom: 0.5 }));
  const preset = el("input", { type: "number", min: 1, max: 255, value: 1, id: "ptz-preset" });
  const controls = el("div", { class: "card" }, pad, el("div", { class: "row" }, el("label", {}, "Preset ", preset),
    el("button", { type: "button", onclick: () => send({ action: "goto_preset", preset: Number(preset.value) }) }, "Go to"),
    el("button", { type: "button", onclick: () => send({ action: "set_preset", preset: Number(preset.value) }) }, "Store")));
  async function show() {
    if (tile) tile.close();
    view.replaceChildren();
    const c = state.channels.find((x) => String(x.id) === ch.value);
    if (!c) return;
    const info = await api(`/api/ptz/${c.id}`).catch((e) => ({ available: false, error: e.message }));
    if (c.streams.length) { tile = liveTile(c, c.streams.some((s) => s.stream === "main") ? "main" : c.streams[0].stream); view.append(tile.node); }
    view.append(controls);
    if (!info.available) message(status, info.error || `Channel ${c.id} has no PTZ camera configured.`);
    else status.textContent = "";
  }
  ch.addEventListener("change", show);
  onCleanup(() => { if (tile) tile.close(); });
  await show();
}

export async function alarmsPage(page) {
  const active = el("tbody", { id: "alarm-active" }), events = el("tbody", { id: "alarm-events" });
  const io = el("div", { id: "alarm-io" }), status = el("p", { role: "status", id: "alarm-status" });
  const ch = channelSelect("alarm-channel");
  ch.prepend(el("option", { value: "" }, "whole appliance"));
  const trigger = el("button", { type: "button", id: "alarm-trigger", class: "primary", disabled: !may("operator") }, "Trigger alarm");
  page.append(el("h2", {}, "Alarms"), el("div", { class: "card row" }, el("label", {}, "Channel ", ch), trigger, status),
    el("h3", {}, "Active"), el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Since"), el("th", {}, "Kind"), el("th", {}, "Channel"), el("th", {}, "Message"), el("th"))), active),
    el("h3", {}, "Inputs and outputs"), io,
    el("h3", {}, "Last 24 hours"), el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Kind"), el("th", {}, "Channel"), el("th", {}, "Message"))), events));
  trigger.addEventListener("click", async () => {
    try { await api("/api/alarms/trigger", { method: "POST", body: { channel: ch.value ? Number(ch.value) : null } }); message(status, "Alarm raised.", true); load(); }
    catch (e) { message(status, e.message); }
  });
  async function load() {
    const a = await api("/api/alarms");
    active.replaceChildren(...a.active.map((x) => el("tr", { class: "alarm" }, el("td", {}, fmtTime(x.since_us)), el("td", {}, x.kind),
      el("td", {}, x.channel ?? "—"), el("td", {}, x.message),
      el("td", {}, may("operator") ? el("button", { type: "button", onclick: async () => {
        await api("/api/alarms/clear", { method: "POST", body: { kind: x.kind, channel: x.channel } }).catch((e) => message(status, e.message)); load();
      } }, "Clear") : ""))));
    if (!a.active.length) active.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No active alarm.")));
    io.replaceChildren(a.io ? el("div", {},
      ...a.inputs.map((i) => el("span", { class: `badge ${i.active ? "bad" : ""}` }, `in ${i.name || i.id}: ${i.active ? "ACTIVE" : "idle"} `)),
      ...a.outputs.map((o) => el("button", { type: "button", disabled: !may("operator"), onclick: async () => {
        await api(`/api/alarms/outputs/${encodeURIComponent(o.id)}`, { method: "POST", body: { on: !o.on } }).catch((e) => message(status, e.message)); load();
      } }, `out ${o.name || o.id}: ${o.on ? "ON" : "off"}`)))
      : el("p", { class: "muted" }, "This appliance has no alarm inputs or outputs configured."));
    const ev = await api("/api/events");
    events.replaceChildren(...ev.reverse().map((x) => el("tr", {}, el("td", {}, fmtTime(x.start_us)), el("td", {}, x.kind), el("td", {}, x.channel ?? "—"), el("td", {}, x.message))));
  }
  const timer = setInterval(() => load().catch(() => {}), 3000);
  onCleanup(() => clearInterval(timer));
  const intercom = await intercomCard();
  if (intercom) page.insertBefore(intercom, page.children[2]);  // under the manual alarm: answer one by voice
  await load();
}

// An analog input's video loss outranks the connection state; network cameras have no capture block.
function streamState(s) {
  if (s.capture && s.capture.video_loss) return el("span", { class: "badge bad" }, "video loss");
  return el("span", { class: `badge ${s.connected ? "good" : "bad"}` }, s.connected ? "recording" : (s.last_error || "connecting"));
}

function captureText(c) {
  if (!c) return "";
  const signal = c.signal_present === false ? "no signal" : "signal";
  return `${(c.fps_measured || 0).toFixed(1)} fps · ${c.frames_dropped || 0} dropped · ${signal} · ${c.video_losses || 0} losses`;
}

function mqttState(m) {
  const state = el("span", { class: `badge ${m.connected ? "good" : "bad"}` }, m.connected ? "connected" : "not connected");
  const counts = m.connected !== undefined && m.outbox !== undefined
    ? ` ${m.broker} · outbox ${m.outbox}/${m.outbox_max} · published ${m.published} · dropped ${m.dropped}` : "";
  return el("div", {}, el("p", {}, state, counts), ...(m.last_error ? [el("p", { class: "error", id: "mqtt-error" }, m.last_error)] : []));
}

export async function healthPage(page) {
  const body = el("div", { id: "health" });
  page.append(el("h2", {}, "Health"), body);
  async function load() {
    const h = await api("/api/health");
    const gb = (b) => (b / 1e9).toFixed(2) + " GB";
    body.replaceChildren(
      el("div", { class: "card" }, el("p", {}, `Recorder up ${Math.round(h.uptime_s)} s · system up ${h.system_uptime_s ? Math.round(h.system_uptime_s / 3600) + " h" : "?"} · ${h.segments} segments, ${gb(h.bytes)} · ${h.time}`)),
      el("h3", {}, "Disks"), el("table", {}, el("tr", {}, ...["Path", "Disk", "Used", "Free", "Health", "Temp", "Holds", "State"].map((t) => el("th", {}, t))),
        ...h.disks.map((d) => el("tr", {}, el("td", {}, d.path), el("td", {}, [d.device, d.model].filter(Boolean).join(" ") || "—"),
          el("td", {}, d.ok ? d.used_percent + " %" : "—"), el("td", {}, d.ok ? gb(d.free_bytes) : "—"),
          el("td", {}, el("span", { class: `badge ${String(d.health || "").startsWith("failing") ? "bad" : d.health === "passed" ? "good" : ""}` }, d.health || "—")),
          el("td", {}, d.temperature_c != null ? `${d.temperature_c} °C` : "—"),
          el("td", {}, d.retention_preview && d.retention_preview.days != null ? `${d.retention_preview.days} days` : "—"),
          el("td", {}, el("span", { class: `badge ${d.ok ? "good" : "bad"}` }, d.ok ? "ok" : d.error))))),
      el("h3", {}, "Streams"), el("table", {}, el("tr", {}, ...["Ch", "Stream", "Source", "State", "Frames", "Segments", "Connects", "Capture"].map((t) => el("th", {}, t))),
        ...h.streams.map((s) => el("tr", {}, el("td", {}, s.channel), el("td", {}, s.stream), el("td", {}, s.source),
          el("td", {}, streamState(s)),
          el("td", {}, s.frames_recorded), el("td", {}, s.segments), el("td", {}, s.connects), el("td", {}, captureText(s.capture))))),
      el("h3", {}, "Temperatures"), h.temperatures.length ? el("table", {}, ...h.temperatures.map((t) => el("tr", {}, el("td", {}, t.type), el("td", {}, `${t.celsius} °C`))))
        : el("p", { class: "muted" }, "No temperature sensor readable."),
      el("h3", {}, "Active alarms"), h.alarms.length ? el("ul", {}, ...h.alarms.map((a) => el("li", { class: "error" }, `${a.kind}: ${a.message}`))) : el("p", { class: "muted" }, "None."),
      ...(h.mqtt ? [el("h3", {}, "MQTT"), mqttState(h.mqtt)] : []));
  }
  const timer = setInterval(() => load().catch(() => {}), 5000);
  onCleanup(() => clearInterval(timer));
  await load();
}

export async function configPage(page) {
  const cfg = await api("/api/config");
  const text = el("textarea", { id: "cfg-text", spellcheck: "false" });
  text.value = cfg.yaml;
  const out = el("div", { id: "cfg-message", role: "status" });
  const validate = el("button", { type: "button", id: "cfg-validate" }, "Validate");
  const save = el("button", { type: "button", id: "cfg-save", class: "primary", disabled: !cfg.editable }, "Save");
  page.append(el("h2", {}, "Config"), el("p", { class: "muted" }, `Source: ${cfg.source}${cfg.editable ? "" : " (built in: start nvr with --config FILE to edit)"}`),
    text, el("div", { class: "row" }, validate, save), out);
  const show = (r) => {
    if (r.ok || r.saved) message(out, r.message || `Valid.${r.changed_channels.length ? " Changed channels: " + r.changed_channels.join(", ") : ""}`, true);
    else message(out, r.problems.map((p) => p.text).join("\n"));
  };
  validate.addEventListener("click", async () => { try { show(await api("/api/config/validate", { method: "POST", body: { yaml: text.value } })); } catch (e) { message(out, e.message); } });
  save.addEventListener("click", async () => { try { show(await api("/api/config", { method: "PUT", body: { yaml: text.value } })); } catch (e) { message(out, e.message); } });
}

export async function usersPage(page) {
  const list = el("tbody", { id: "users" }), audit = el("tbody", { id: "audit" }), out = el("p", { role: "status" });
  const name = el("input", { placeholder: "name", autocomplete: "off" }), pass = el("input", { type: "password", placeholder: "password", autocomplete: "new-password" });
  const role = el("select", {}, ...["viewer", "operator", "admin"].map((r) => el("option", { value: r }, r)));
  const add = el("form", { class: "card row" }, name, pass, role, el("button", { type: "submit" }, "Add user"), out);
  page.append(el("h2", {}, "Users"), add, el("table", {}, list), el("h3", {}, "Audit log"), el("table", {}, audit));
  async function load() {
    list.replaceChildren(...(await api("/api/users")).map((u) => el("tr", {}, el("td", {}, u.username), el("td", {}, u.role),
      el("td", {}, u.username === state.user.username ? "" : el("button", { type: "button", onclick: async () => {
        await api(`/api/users/${encodeURIComponent(u.username)}`, { method: "DELETE" }).catch((e) => message(out, e.message)); load();
      } }, "Remove")))));
    audit.replaceChildren(...(await api("/api/audit?limit=100")).map((a) => el("tr", {}, el("td", {}, fmtTime(a.at_us)), el("td", {}, a.user ?? ""),
      el("td", {}, a.action), el("td", {}, a.detail), el("td", {}, a.client ?? ""))));
  }
  add.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api("/api/users", { method: "POST", body: { username: name.value, password: pass.value, role: role.value } });
      message(out, `Added ${name.value}.`, true); name.value = pass.value = ""; load(); }
    catch (e) { message(out, e.message); }
  });
  await load();
}
