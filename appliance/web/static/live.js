// Live view: fMP4 over a WebSocket into Media Source Extensions; MJPEG <img> where MSE is missing.
import { el, may, onCleanup, state } from "./app.js";
import { talkButton } from "./talk.js";

const MS = window.ManagedMediaSource || window.MediaSource;  // ManagedMediaSource: Safari on iPhone

export function mseSupported(codec = "avc1.42e01e") {
  return !!MS && MS.isTypeSupported(`video/mp4; codecs="${codec}"`);
}

/** Plays one live stream in `video`. Keeps latency low by jumping to the live edge when behind.
 *  Muted, it asks for the picture only (sound would add the audio encoder's lag to the latency);
 *  `setSound(true)` reconnects asking for the sound track too and unmutes. `onAudio(hasAudio)` is
 *  told whether the stream has sound, from each init message. */
export class LivePlayer {
  constructor(video, channel, stream, { timing = false, sound = false, onState = () => {}, onAudio = () => {} } = {}) {
    Object.assign(this, { video, channel, stream, timing, onState, onAudio });
    this.queue = []; this.closed = false; this.frames = 0; this.timings = new Map(); this.retryMs = 500;
    this.sound = !!sound; this.hasAudio = false;
    video.muted = !this.sound; video.playsInline = true; video.autoplay = true; video.disableRemotePlayback = true;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const query = [this.timing ? "timing=1" : "", this.sound ? "audio=1" : ""].filter(Boolean).join("&");
    const ws = new WebSocket(`${proto}://${location.host}/api/live/${this.channel}/${this.stream}${query ? "?" + query : ""}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.onState("connecting");
    ws.onmessage = (ev) => this.message(ev.data);
    ws.onclose = () => {
      if (this.closed) return;
      this.onState("reconnecting");
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }

  message(data) {
    if (typeof data === "string") {
      const msg = JSON.parse(data);
      if (msg.type === "init") { this.hasAudio = !!msg.has_audio; this.onAudio(this.hasAudio); this.startSource(msg.codec); }
      else if (msg.type === "frame") this.timings.set(Math.round(msg.media_s * 1000), msg.capture_ms);
      else if (msg.type === "error") this.onState(msg.message);
      return;
    }
    this.retryMs = 500;
    this.queue.push(data);
    this.pump();
  }

  startSource(codec) {
    if (this.codec === codec && this.buffer) return;  // the next binary message is the new init segment
    this.codec = codec; this.buffer = null; this.queue = [];
    const source = new MS();
    this.source = source;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(source);
    this.video.src = this.url;
    source.addEventListener("sourceopen", () => {
      if (source !== this.source) return;
      this.buffer = source.addSourceBuffer(`video/mp4; codecs="${codec}"`);
      this.buffer.mode = "segments";
      this.buffer.addEventListener("updateend", () => this.pump());
      this.pump();
    });
  }

  pump() {
    const b = this.buffer;
    if (!b || b.updating || !this.queue.length || this.source.readyState !== "open") return;
    try {
      this.trim();
      if (b.updating) return;
      b.appendBuffer(this.queue.shift());
      this.frames++;
    } catch (e) {
      if (e.name === "QuotaExceededError") { this.queue = []; return; }
      console.warn("live append", e); this.restart();
      return;
    }
    this.chase();
  }

  /** Stay near the live edge: latency over ~0.6 s is skipped, and playback starts once data is there. */
  chase() {
    const v = this.video, r = v.buffered;
    if (!r.length) return;
    const end = r.end(r.length - 1);
    if (end - v.currentTime > 0.6 || v.currentTime < r.start(r.length - 1)) v.currentTime = Math.max(r.start(r.length - 1), end - 0.15);
    if (v.paused) v.play().catch(() => {});
    this.onState("live");
  }

  trim() {
    const v = this.video, r = v.buffered;
    if (r.length && v.currentTime - r.start(0) > 20) this.buffer.remove(0, v.currentTime - 10);
  }

  restart() { try { this.ws.close(); } catch { /* closing anyway */ } this.codec = null; }

  /** Sound on (unmuted, the socket asks for the sound track) or off (muted, picture only). Call it from
   *  a click: browsers play sound only after the user did something on the page. */
  setSound(on) {
    this.sound = !!on;
    this.video.muted = !this.sound;
    const old = this.ws;
    if (old) { old.onclose = null; old.onmessage = null; try { old.close(); } catch { /* closing anyway */ } }
    this.codec = null; this.queue = [];
    this.connect();
  }

  close() {
    this.closed = true;
    try { this.ws.close(); } catch { /* already closed */ }
    this.video.removeAttribute("src"); this.video.load();
    if (this.url) URL.revokeObjectURL(this.url);
  }
}

/** A tile for a channel: MSE video, or MJPEG when the browser has no MSE. Returns {node, close}. */
export function liveTile(channel, stream, { label = true } = {}) {
  const stateEl = el("span", { class: "state" }, "…");
  const tile = el("div", { class: "tile", "data-channel": channel.id });
  if (label) tile.append(el("span", { class: "label" }, `${channel.id} · ${channel.name}`));
  tile.append(stateEl);
  let player = null, img = null;
  if (mseSupported()) {
    const video = el("video", { muted: true, playsinline: true, autoplay: true });
    tile.prepend(video);
    const sound = el("button", { class: "sound", type: "button", hidden: true, "aria-pressed": "false",
                                 title: "Play this camera's sound" }, "Unmute");
    tile.append(sound);
    player = new LivePlayer(video, channel.id, stream, {
      onState: (s) => { stateEl.textContent = s; },
      onAudio: (has) => { sound.hidden = !has; },
    });
    sound.addEventListener("click", (ev) => {
      ev.stopPropagation();  // a click on the tile opens or closes full screen; this one is for the sound
      player.setSound(!player.sound);
      const on = player.sound;
      sound.textContent = on ? "Mute" : "Unmute";  // words, not emoji: not every browser has the glyphs
      sound.setAttribute("aria-pressed", String(on));
    });
    tile.nvrPlayer = player;  // for tests and the console
  } else {
    img = el("img", { alt: channel.name, src: `/api/live/${channel.id}/${stream}/mjpeg?fps=4` });
    tile.prepend(img);
    stateEl.textContent = "MJPEG";
  }
  const talk = channel.talk && may("operator") ? talkButton(channel, el) : null;
  if (talk) tile.append(talk.node);
  return { node: tile, close: () => { if (talk) talk.close(); if (player) player.close(); if (img) img.removeAttribute("src"); } };
}

function bestStream(channel, full) {
  const names = channel.streams.map((s) => s.stream);
  if (!names.length) return null;
  if (full) return names.includes("main") ? "main" : names[0];
  return names.includes("sub") ? "sub" : names[0];  // the sub-stream in the grid, main full screen
}

export async function livePage(page) {
  const grid = el("div", { class: "grid", id: "live-grid" });
  page.append(el("h2", {}, "Live"), grid);
  const tiles = [];
  const channels = state.channels.filter((c) => c.enabled && c.streams.length);
  if (!channels.length) grid.append(el("p", { class: "muted" }, "No channel is recording."));
  for (const ch of channels) {
    const t = liveTile(ch, bestStream(ch, false));
    t.node.addEventListener("click", () => openFull(ch));
    grid.append(t.node); tiles.push(t);
  }
  let full = null;
  function openFull(ch) {
    if (full) return;
    full = liveTile(ch, bestStream(ch, true));
    full.node.classList.add("full");
    full.node.addEventListener("click", () => { full.close(); full.node.remove(); full = null; });
    document.body.append(full.node);
  }
  onCleanup(() => { tiles.forEach((t) => t.close()); if (full) { full.close(); full.node.remove(); } });
}
