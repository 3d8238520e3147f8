// The front end: login / first run, the page router, and the API helper every page uses.
import { livePage } from "./live.js";
import { playbackPage } from "./playback.js";
import { exportPage, ptzPage, alarmsPage, healthPage, configPage, usersPage } from "./pages.js";
import { disksPage } from "./disks.js";
import { camerasPage } from "./cameras.js";

const ROLES = ["viewer", "operator", "admin"];
export const state = { user: null, channels: [], cleanup: [] };

function cookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : "";
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** fetch JSON from the API; state-changing requests carry the CSRF token; 401 shows the login form. */
export async function api(path, { method = "GET", body, raw = false, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("nvr_csrf");
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  credentials: "same-origin", signal });
  if (res.status === 401 && !path.startsWith("/api/login")) { showLogin(); throw new ApiError(401, "log in first"); }
  if (raw) return res;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) throw new ApiError(res.status, errorText(data) || res.statusText);
  return data;
}

function errorText(data) {
  if (!data) return "";
  const d = data.detail !== undefined ? data.detail : data;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("\n");
  if (d && d.message) return d.message + (d.problems ? "\n" + d.problems.map((p) => p.text).join("\n") : "");
  return JSON.stringify(d);
}

export function may(role) { return state.user && ROLES.indexOf(state.user.role) >= ROLES.indexOf(role); }

/** Create an element: el("div", {class: "x", onclick: f}, child, "text"). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
}

export function onCleanup(fn) { state.cleanup.push(fn); }

export function isoLocal(ms) {  // for <input type=datetime-local>
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
export function fmtTime(us) { return new Date(us / 1000).toLocaleString(); }

// login and first run

let setupMode = false;

async function showLogin() {
  document.getElementById("top").hidden = true;
  document.getElementById("page").hidden = true;
  document.getElementById("login").hidden = false;
  state.user = null;
  try {
    const ping = await (await fetch("/api/ping")).json();
    setupMode = ping.setup_required;
  } catch { setupMode = false; }
  document.getElementById("login-title").textContent = setupMode ? "Set the administrator password" : "Log in";
  document.getElementById("login-hint").textContent = setupMode
    ? "First start: there is no default password. Choose the administrator's name and password (8 characters or more)." : "";
  document.getElementById("confirm-row").hidden = !setupMode;
  document.getElementById("login-button").textContent = setupMode ? "Create administrator" : "Log in";
  document.getElementById("password").autocomplete = setupMode ? "new-password" : "current-password";
}

async function submitLogin(ev) {
  ev.preventDefault();
  const f = ev.target, error = document.getElementById("login-error");
  error.textContent = "";
  const body = { username: f.username.value.trim(), password: f.password.value };
  if (setupMode && body.password !== f.confirm.value) { error.textContent = "The two passwords differ."; return; }
  try {
    state.user = await api(setupMode ? "/api/setup" : "/api/login", { method: "POST", body });
    f.password.value = ""; f.confirm.value = "";
    await start();
  } catch (e) { error.textContent = e.message; }
}

async function logout() {
  try { await api("/api/logout", { method: "POST" }); } catch { /* the session may be gone already */ }
  showLogin();
}

// pages

const PAGES = { live: livePage, playback: playbackPage, export: exportPage, ptz: ptzPage, alarms: alarmsPage,
                health: healthPage, disks: disksPage, config: configPage, cameras: camerasPage, users: usersPage };

async function route() {
  if (!state.user) return;
  for (const fn of state.cleanup.splice(0)) { try { fn(); } catch (e) { console.warn(e); } }
  const [name, ...args] = (location.hash.replace(/^#\/?/, "") || "live").split("/");
  const page = document.getElementById("page");
  page.replaceChildren();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const render = PAGES[name] || livePage;
  try { await render(page, args); } catch (e) { if (e.status !== 401) page.append(el("p", { class: "error" }, e.message)); }
}

async function start() {
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("page").hidden = false;
  document.getElementById("who").textContent = `${state.user.username} (${state.user.role})`;
  for (const a of document.querySelectorAll("#nav a[data-role]")) a.hidden = !may(a.dataset.role);
  state.channels = await api("/api/channels");
  await route();
}

async function boot() {
  document.getElementById("login-form").addEventListener("submit", submitLogin);
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try { state.user = await api("/api/me"); } catch { return; }
  await start();
}

boot();
