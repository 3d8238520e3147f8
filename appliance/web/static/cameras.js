// The "Add camera" page (admin): find ONVIF cameras, read one with its credentials, add it as a channel.
import { api, el, state } from "./app.js";

function message(node, text, ok = false) { node.className = ok ? "ok" : "error"; node.textContent = text; }

function profileLabel(p) {
  const size = p.width ? `${p.width}x${p.height}` : "no video";
  return `${p.token}: ${p.name} (${p.encoding || "?"} ${size})`;
}

export async function camerasPage(page) {
  const found = el("tbody", { id: "cam-found" });
  const search = el("button", { type: "button", id: "cam-discover" }, "Search the network");
  const searching = el("p", { id: "cam-search-message", role: "status" });
  const url = el("input", { id: "cam-url", placeholder: "http://192.168.1.64", autocomplete: "off" });
  const user = el("input", { id: "cam-user", autocomplete: "off" });
  const pass = el("input", { id: "cam-password", type: "password", autocomplete: "new-password" });
  const read = el("button", { type: "submit", id: "cam-read" }, "Read camera");
  const readOut = el("p", { id: "cam-read-message", role: "status" });
  const login = el("form", { class: "card" }, el("label", {}, "ONVIF address ", url),
    el("div", { class: "row" }, el("label", {}, "User ", user), el("label", {}, "Password ", pass)), read, readOut);
  const details = el("div", { id: "cam-details", class: "card", hidden: true });
  page.append(el("h2", {}, "Add camera"),
    el("p", { class: "muted" }, "ONVIF cameras on this network. Many cameras need an ONVIF user created in their own web page first."),
    el("div", { class: "card" }, search, searching, el("table", {}, found)), login, details);

  search.addEventListener("click", async () => {
    search.disabled = true; message(searching, "Searching…", true);
    try {
      const devices = await api("/api/cameras/discover", { method: "POST", body: { timeout_s: 2 } });
      found.replaceChildren(...devices.map((d) => el("tr", {},
        el("td", {}, d.name || "(no name)"), el("td", {}, d.hardware), el("td", {}, d.url),
        el("td", {}, el("button", { type: "button", class: "cam-use", onclick: () => { url.value = d.url; user.focus(); } }, "Use")))));
      message(searching, devices.length ? `${devices.length} device(s) answered.` : "No ONVIF device answered: type its address below.", devices.length > 0);
    } catch (e) { message(searching, e.message); }
    search.disabled = false;
  });

  login.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    read.disabled = true; details.hidden = true; message(readOut, "Reading…", true);
    try {
      const cam = await api("/api/cameras/read", { method: "POST", body: { url: url.value.trim(), username: user.value, password: pass.value } });
      message(readOut, `${cam.manufacturer} ${cam.model}, firmware ${cam.firmware}; password sent as ${cam.auth}, camera clock ${cam.clock_offset_s} s from ours.`, true);
      showDetails(cam);
    } catch (e) { message(readOut, e.message); }
    read.disabled = false;
  });

  function showDetails(cam) {
    const video = cam.profiles.filter((p) => p.stream_uri);
    const main = el("select", { id: "cam-main" }, ...video.map((p) => el("option", { value: p.token }, profileLabel(p))));
    const sub = el("select", { id: "cam-sub" }, el("option", { value: "" }, "none"),
      ...video.map((p) => el("option", { value: p.token }, profileLabel(p))));
    if (video.length > 1) sub.value = video[video.length - 1].token;  // cameras list the main stream first
    const name = el("input", { id: "cam-name", value: `${cam.manufacturer} ${cam.model}`.trim().slice(0, 64), maxlength: 64 });
    const add = el("button", { type: "button", id: "cam-add", class: "primary" }, "Add channel");
    const out = el("p", { id: "cam-add-message", role: "status" });
    const uris = el("table", {}, ...video.map((p) => el("tr", {}, el("td", {}, p.token), el("td", {}, p.stream_uri),
      el("td", {}, p.snapshot_uri || ""))));
    details.replaceChildren(el("h3", {}, "Profiles"), uris, el("label", {}, "Record (main) ", main),
      el("label", {}, "Live view and motion (sub) ", sub), el("label", {}, "Channel name ", name), add, out);
    details.hidden = false;
    add.addEventListener("click", async () => {
      add.disabled = true;
      try {
        const r = await api("/api/cameras", { method: "POST", body: { url: url.value.trim(), username: user.value, password: pass.value,
          name: name.value, profile: main.value, sub_profile: sub.value || null } });
        message(out, `Channel ${r.channel} added. ${r.message}`, true);
        state.channels = await api("/api/channels");
      } catch (e) { message(out, e.message); add.disabled = false; }
    });
  }
}
