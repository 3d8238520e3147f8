// Playback: per-channel timelines (day/hour) with recordings, gaps and events; seek by click or drag;
// 1x-16x; several channels kept in sync. Video comes as fMP4 chunks cut from the segments on disk.
import { api, el, may, onCleanup, state } from "./app.js";

const MS = window.ManagedMediaSource || window.MediaSource;
const HOUR_US = 3600e6, DAY_US = 24 * HOUR_US;

/** One channel's player. Media time = (wall time - baseUs) / 1e6, so chunks line up and gaps stay gaps. */
class PlaybackPlayer {
  constructor(video, channel, baseUs) {
    Object.assign(this, { video, channel, baseUs });
    this.ops = []; this.gen = 0; this.nextUs = null; this.fetching = false; this.rate = 1; this.wantPlay = false;
    this.endOfRecording = false;
    video.muted = true; video.playsInline = true; video.disableRemotePlayback = true;
    this.source = new MS();
    this.url = URL.createObjectURL(this.source);
    video.src = this.url;
    this.ready = new Promise((resolve) => this.source.addEventListener("sourceopen", resolve, { once: true }));
    this.timer = setInterval(() => this.tick(), 250);
  }

  wallNow() { return this.baseUs + this.video.currentTime * 1e6; }

  async seek(wallUs) {
    const gen = ++this.gen;
    this.nextUs = null; this.endOfRecording = false;
    if (this.buffer) this.ops.push({ remove: true });
    const chunk = await this.fetchChunk(wallUs, gen, 1);  // small first: the frame shows sooner
    if (!chunk || gen !== this.gen) return false;
    await this.append(chunk.data, gen);
    if (gen !== this.gen) return false;
    this.video.currentTime = Math.max(wallUs, chunk.startUs) / 1e6 - this.baseUs / 1e6;
    this.video.playbackRate = this.rate;
    if (this.wantPlay) this.video.play().catch(() => {});
    return true;
  }

  async fetchChunk(wallUs, gen, durS) {
    this.fetching = true;
    try {
      const dur = durS || Math.min(60, 6 * Math.max(1, this.rate / 2));
      const res = await api(`/api/playback/${this.channel}?start=${Math.round(wallUs)}&base=${this.baseUs}&duration_s=${dur}`, { raw: true });
      if (gen !== this.gen) return null;
      if (res.status === 204) { this.endOfRecording = true; this.nextUs = Math.round(wallUs); return null; }
      if (!res.ok) throw new Error(`playback ${res.status}`);
      const next = res.headers.get("X-Next-Start-Us");
      this.nextUs = next ? Number(next) : Number(res.headers.get("X-Chunk-End-Us"));
      this.endOfRecording = !next;
      const codec = res.headers.get("X-Codec");
      await this.ensureBuffer(codec);
      return { data: await res.arrayBuffer(), startUs: Number(res.headers.get("X-Chunk-Start-Us")) };
    } finally { this.fetching = false; }
  }

  async ensureBuffer(codec) {
    await this.ready;
    const type = `video/mp4; codecs="${codec}"`;
    if (!this.buffer) {
      this.buffer = this.source.addSourceBuffer(type);
      this.buffer.mode = "segments";
      this.buffer.addEventListener("updateend", () => this.runOps());
    } else if (codec !== this.codec && this.buffer.changeType) {
      this.ops.push({ changeType: type });
    }
    this.codec = codec;
  }

  append(data, gen) {
    return new Promise((resolve) => { this.ops.push({ data, gen, done: resolve }); this.runOps(); });
  }

  runOps() {
    const b = this.buffer;
    if (!b || b.updating || !this.ops.length) return;
    const op = this.ops.shift();
    try {
      if (op.remove) { if (b.buffered.length) b.remove(0, Infinity); else this.runOps(); return; }
      if (op.changeType) { b.changeType(op.changeType); this.runOps(); return; }
      if (op.gen !== this.gen) { op.done(); this.runOps(); return; }
      b.addEventListener("updateend", () => op.done(), { once: true });
      b.appendBuffer(op.data);
    } catch (e) {
      console.warn("playback append", e);
      if (op.done) op.done();
      if (e.name === "QuotaExceededError") this.trim(true);
    }
  }

  trim(force) {
    const b = this.buffer, t = this.video.currentTime;
    if (b && !b.updating && b.buffered.length && (force || t - b.buffered.start(0) > 60)) b.remove(0, Math.max(0, t - 20));
  }

  aheadS() {
    const r = this.video.buffered, t = this.video.currentTime;
    for (let i = 0; i < r.length; i++) if (r.start(i) <= t + 0.05 && t < r.end(i)) return r.end(i) - t;
    return 0;
  }

  /** Keep enough buffered ahead; jump over gaps; poll for more at the end of the recording. */
  async tick() {
    const v = this.video, r = v.buffered, t = v.currentTime;
    if (r.length && this.aheadS() < 0.1) {
      for (let i = 0; i < r.length; i++) if (r.start(i) > t) { v.currentTime = r.start(i) + 0.001; break; }
    }
    const want = Math.max(10, 4 * this.rate);
    if (this.fetching || this.nextUs === null || this.aheadS() > want || !this.buffer) return;
    if (this.endOfRecording && Date.now() - (this.lastPoll || 0) < 3000) return;
    this.lastPoll = Date.now();
    const gen = this.gen;
    try {
      const chunk = await this.fetchChunk(this.nextUs, gen);
      if (chunk) { await this.append(chunk.data, gen); this.trim(false); }
    } catch (e) { console.warn(e); }
  }

  setRate(rate) { this.rate = rate; this.video.playbackRate = rate; }
  play() { this.wantPlay = true; return this.video.play().catch(() => {}); }
  pause() { this.wantPlay = false; this.video.pause(); }

  close() {
    this.gen++; clearInterval(this.timer);
    this.video.removeAttribute("src"); this.video.load(); URL.revokeObjectURL(this.url);
  }
}

function localMidnight(ms) { const d = new Date(ms); d.setHours(0, 0, 0, 0); return d.getTime() * 1000; }

/** The timeline of one channel: recorded spans, event marks with their density, and the cursor. */
class Timeline {
  constructor(canvas, channel, onSeek) {
    Object.assign(this, { canvas, channel, onSeek, spans: [], events: [] });
    let dragging = false;
    const at = (ev) => { const rect = canvas.getBoundingClientRect();
      return this.view[0] + (ev.clientX - rect.left) / rect.width * (this.view[1] - this.view[0]); };
    canvas.addEventListener("pointerdown", (ev) => { dragging = true; canvas.setPointerCapture(ev.pointerId); this.cursor = at(ev); this.draw(); });
    canvas.addEventListener("pointermove", (ev) => { if (dragging) { this.cursor = at(ev); this.draw(); } });
    canvas.addEventListener("pointerup", (ev) => { if (dragging) { dragging = false; onSeek(at(ev)); } });
  }

  async load(view) {
    this.view = view;
    const data = await api(`/api/timeline?channel=${this.channel}&start=${Math.round(view[0])}&end=${Math.round(view[1])}`);
    this.spans = data.spans; this.events = data.events;
    this.draw();
  }

  draw() {
    if (!this.view) return;
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    c.width = c.clientWidth * dpr; c.height = c.clientHeight * dpr;
    const g = c.getContext("2d"), [a, b] = this.view, w = c.width, h = c.height;
    const x = (us) => (us - a) / (b - a) * w;
    g.fillStyle = "#30353d"; g.fillRect(0, 0, w, h);
    g.fillStyle = "#2f7d4f";
    for (const s of this.spans) g.fillRect(x(s.start_us), h * 0.35, Math.max(2 * dpr, x(s.end_us) - x(s.start_us)), h * 0.65);
    const buckets = new Array(96).fill(0);  // event density, drawn as a plot over the spans
    for (const e of this.events) { const i = Math.floor((e.start_us - a) / (b - a) * 96); if (i >= 0 && i < 96) buckets[i]++; }
    const peak = Math.max(1, ...buckets);
    g.fillStyle = "#ffb020";
    buckets.forEach((n, i) => { if (n) g.fillRect(i * w / 96, h * 0.33 * (1 - n / peak), w / 96 - 1, h * 0.33 * n / peak); });
    for (const e of this.events) g.fillRect(x(e.start_us), h * 0.35, Math.max(1, dpr), h * 0.65);
    g.fillStyle = "#8b94a3"; g.font = `${10 * dpr}px sans-serif`;
    const step = b - a > 2 * HOUR_US ? 3 * HOUR_US : 10 * 60e6;
    for (let t = Math.ceil(a / step) * step; t < b; t += step) {
      g.fillRect(x(t), h - 4 * dpr, 1, 4 * dpr);
      g.fillText(new Date(t / 1000).toTimeString().slice(0, 5), x(t) + 2, h - 2 * dpr);
    }
    if (this.cursor) { g.fillStyle = "#ff5c5c"; g.fillRect(x(this.cursor) - dpr, 0, 2 * dpr, h); }
  }
}

export async function playbackPage(page) {
  const channels = state.channels;  // recordings outlive a camera that is down or disabled now
  const today = new Date(); const pad = (n) => String(n).padStart(2, "0");
  const dateInput = el("input", { type: "date", id: "pb-date", value: `${today.getFullYear()}-${pad(today.getMonth() + 1)}-${pad(today.getDate())}` });
  const zoom = el("select", { id: "pb-zoom" }, el("option", { value: "day" }, "Day"), el("option", { value: "hour" }, "Hour"));
  const speed = el("select", { id: "pb-speed" }, ...[1, 2, 4, 8, 16].map((s) => el("option", { value: s }, `${s}×`)));
  const playBtn = el("button", { id: "pb-play", type: "button" }, "Play");
  const clock = el("span", { class: "clock", id: "pb-clock" }, "—");
  const exportBtn = el("button", { type: "button", id: "pb-export", hidden: !may("operator") }, "Export from here");
  const picks = channels.map((c, i) => el("label", { class: "badge" }, el("input", { type: "checkbox", value: c.id, checked: i < 4 }), ` ${c.id} ${c.name}`));
  const players = el("div", { class: "players" }), lines = el("div", {});
  page.append(el("h2", {}, "Playback"),
    el("div", { class: "row" }, dateInput, zoom, el("button", { type: "button", id: "pb-prev" }, "◀"), el("button", { type: "button", id: "pb-next" }, "▶"),
       playBtn, speed, clock, exportBtn), el("div", { class: "row" }, ...picks), lines, players);

  let cursorUs = Date.now() * 1000 - 5 * 60e6, views = [], timelines = [], playing = false, seeks = 0;
  const dayStart = () => localMidnight(new Date(dateInput.value + "T00:00").getTime());
  const view = () => zoom.value === "day" ? [dayStart(), dayStart() + DAY_US]
    : [Math.floor(cursorUs / HOUR_US) * HOUR_US, Math.floor(cursorUs / HOUR_US) * HOUR_US + HOUR_US];

  function build() {
    views.forEach((p) => p.close()); views = []; timelines = [];
    players.replaceChildren(); lines.replaceChildren();
    const base = dayStart() - HOUR_US;
    for (const pick of picks) {
      if (!pick.querySelector("input").checked) continue;
      const id = Number(pick.querySelector("input").value), ch = channels.find((c) => c.id === id);
      const video = el("video", { muted: true, playsinline: true, "data-channel": id });
      const tile = el("div", { class: "tile" }, video, el("span", { class: "label" }, `${id} · ${ch.name}`));
      players.append(tile);
      const p = new PlaybackPlayer(video, id, base); p.setRate(Number(speed.value)); views.push(p);
      const canvas = el("canvas", { class: "timeline", "data-channel": id });
      lines.append(el("div", { class: "tl-row" }, el("div", { class: "name" }, `${id} · ${ch.name}`), canvas));
      timelines.push(new Timeline(canvas, id, seekAll));
    }
    refresh();
  }

  async function refresh() { for (const t of timelines) { t.cursor = cursorUs; await t.load(view()).catch(() => {}); } }

  async function seekAll(us) {
    const a = dayStart() - HOUR_US;
    if (us < a || us > a + DAY_US + 2 * HOUR_US) {  // another day: its own timeline and base
      const d = new Date(us / 1000);
      dateInput.value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      cursorUs = us; build();
    }
    cursorUs = us;
    timelines.forEach((t) => { t.cursor = us; t.draw(); });
    if (zoom.value === "hour") refresh();
    seeks++;  // no syncing while players move: one still at the old place would pull the others back
    try { await Promise.all(views.map((p) => p.seek(us))); } finally { seeks--; }
  }

  function sync() {  // the first player is the master clock; the others follow it
    const m = views[0];
    if (!m || m.video.readyState < 2 || m.video.seeking || seeks) return;
    const wall = m.wallNow();
    cursorUs = wall;
    clock.textContent = new Date(wall / 1000).toLocaleString();
    clock.dataset.us = String(Math.round(wall));
    for (const p of views.slice(1)) {
      if (p.video.readyState >= 2 && Math.abs(p.wallNow() - wall) > 300e3 * Math.max(1, p.rate / 4)) p.video.currentTime = (wall - p.baseUs) / 1e6;
    }
    timelines.forEach((t) => { t.cursor = wall; t.draw(); });
  }
  const syncTimer = setInterval(sync, 250);

  playBtn.addEventListener("click", () => {
    playing = !playing; playBtn.textContent = playing ? "Pause" : "Play";
    views.forEach((p) => (playing ? p.play() : p.pause()));
  });
  exportBtn.addEventListener("click", () => {
    const first = views[0] ? views[0].channel : (channels[0] || {}).id;
    location.hash = `#/export/${first}/${Math.round(cursorUs)}`;
  });
  speed.addEventListener("change", () => views.forEach((p) => p.setRate(Number(speed.value))));
  dateInput.addEventListener("change", () => { cursorUs = dayStart() + 12 * HOUR_US; build(); });
  zoom.addEventListener("change", refresh);
  const pan = (dir) => { const [a, b] = view(); seekAll(cursorUs + dir * (b - a) / (zoom.value === "day" ? 24 : 6)); };
  page.querySelector("#pb-prev").addEventListener("click", () => pan(-1));
  page.querySelector("#pb-next").addEventListener("click", () => pan(1));
  picks.forEach((p) => p.addEventListener("change", () => { build(); seekAll(cursorUs); }));
  const refreshTimer = setInterval(refresh, 30000);

  window.nvrPlayback = { seek: seekAll, players: () => views, view, play: () => { if (!playing) playBtn.click(); } };
  onCleanup(() => { clearInterval(syncTimer); clearInterval(refreshTimer); views.forEach((p) => p.close()); delete window.nvrPlayback; });
  build();
  await seekAll(cursorUs);
}
