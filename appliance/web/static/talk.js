// Push-to-talk: while the button is held, the microphone goes over /api/talk/CHANNEL to the channel's talk
// output (a camera's speaker or the box's AUDIO OUT). Frames: version 1, flags 0, sequence (16-bit LE),
// then 8 kHz int16 LE samples (appliance/talk/frames.py). getUserMedia needs HTTPS (or localhost).

const RATE = 8000, FRAME_SAMPLES = 160;  // 20 ms frames, as the camera's RTP packets
const MAX_BUFFERED_FRAMES = 50;  // sound kept while the box opens the camera's back channel (1 s)

export function talkSupported() {
  return !!(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
            window.AudioContext && window.AudioWorkletNode);
}

/** One press of the button: `start()` opens the microphone and the socket, `stop()` ends both.
 *  `onState(state, message)`: "connecting", "talking", "busy", "error", "idle". */
export class TalkSession {
  constructor(channel, onState = () => {}) {
    Object.assign(this, { channel, onState });
    this.pending = []; this.sequence = 0; this.stopped = false; this.framesSent = 0;
  }

  async start() {
    this.onState("connecting");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia(
        { audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true } });
    } catch (e) {
      this.fail(`no microphone: ${e.message || e.name}`); return;
    }
    if (this.stopped) { this.release(); return; }
    this.ctx = new AudioContext();
    await this.ctx.audioWorklet.addModule("/static/talk-worklet.js");
    if (this.stopped) { this.release(); return; }
    // Kept on `this`: a source node nothing refers to may be collected, and the microphone goes quiet.
    const source = this.source = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, "nvr-talk", { processorOptions: { outRate: RATE, frameSamples: FRAME_SAMPLES } });
    const silent = this.silent = this.ctx.createGain(); silent.gain.value = 0;  // keeps the worklet pulled, plays nothing
    source.connect(this.node); this.node.connect(silent); silent.connect(this.ctx.destination);
    this.node.port.onmessage = (ev) => this.frame(new Int16Array(ev.data));
    await this.ctx.resume();
    this.connect();
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/talk/${this.channel}`);
    ws.binaryType = "arraybuffer"; this.ws = ws;
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      const msg = JSON.parse(ev.data);
      if (msg.type === "ready") {
        this.ready = true; this.output = msg.output; this.onState("talking", msg.output);
        for (const f of this.pending.splice(0)) this.send(f);
      } else if (msg.type === "busy") { this.finish("busy", msg.message); }
      else if (msg.type === "error") { this.finish("error", msg.message); }
    };
    ws.onclose = () => { if (!this.stopped && !this.ended) this.finish("error", "the box ended the talk"); };
  }

  frame(samples) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) { this.send(samples); return; }
    this.pending.push(samples);
    if (this.pending.length > MAX_BUFFERED_FRAMES) this.pending.shift();  // keep the last second
  }

  send(samples) {
    const out = new Uint8Array(4 + samples.length * 2), view = new DataView(out.buffer);
    out[0] = 1; out[1] = 0; view.setUint16(2, this.sequence, true);
    this.sequence = (this.sequence + 1) & 0xffff;
    for (let i = 0; i < samples.length; i++) view.setInt16(4 + 2 * i, samples[i], true);
    this.ws.send(out.buffer); this.framesSent += 1;
  }

  finish(state, message) {
    this.ended = true; this.release(); this.onState(state, message);
  }

  fail(message) { this.finish("error", message); }

  /** The button was let go: what is buffered is sent, then the socket closes. */
  stop() {
    this.stopped = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      const ws = this.ws;
      const close = () => ws.close(1000);
      if (ws.readyState === WebSocket.OPEN) setTimeout(close, 60); else ws.onopen = close;  // the last frame's flight
    }
    this.release();
    if (!this.ended) this.onState("idle");
  }

  release() {
    if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); this.node = null; }
    if (this.source) { this.source.disconnect(); this.source = null; }
    if (this.stream) { this.stream.getTracks().forEach((t) => t.stop()); this.stream = null; }
    if (this.ctx) { this.ctx.close(); this.ctx = null; }
  }
}

/** The "Talk" button of a tile: hold to talk (mouse, touch, or Space/Enter on the focused button). */
export function talkButton(channel, el) {
  const button = el("button", { class: "talk", type: "button", "aria-pressed": "false",
                                title: "Hold to talk through this camera's speaker" }, "Talk");
  let session = null, resetTimer = null;
  const label = (text, pressed, title) => {
    button.textContent = text; button.setAttribute("aria-pressed", String(pressed));
    if (title !== undefined) button.title = title;
  };
  const onState = (s, message) => {
    button.dataset.state = s;
    if (s === "connecting") label("Connecting…", true);
    else if (s === "talking") label("Talking", true, `Talking to ${message}`);
    else if (s === "idle") label("Talk", false);
    else {
      label(s === "busy" ? "Busy" : "Talk failed", false, message);
      clearTimeout(resetTimer); resetTimer = setTimeout(() => { if (!session) label("Talk", false); }, 4000);
      session = null;
    }
  };
  const press = (ev) => {
    ev.preventDefault(); ev.stopPropagation();
    if (session) return;
    if (!talkSupported()) { onState("error", "talking needs HTTPS and a browser with a microphone"); return; }
    session = new TalkSession(channel.id, onState);
    button.nvrTalk = session;  // for tests and the console
    session.start().catch((e) => { if (session) session.fail(String(e)); });
  };
  const release = (ev) => {
    if (ev) ev.stopPropagation();
    if (session) { session.stop(); session = null; }
  };
  button.addEventListener("pointerdown", press);
  for (const name of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(name, release);
  button.addEventListener("keydown", (ev) => { if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) press(ev); });
  button.addEventListener("keyup", (ev) => { if (ev.key === " " || ev.key === "Enter") release(ev); });
  button.addEventListener("click", (ev) => ev.stopPropagation());  // the tile's click is full screen
  return { node: button, close: () => release() };
}
