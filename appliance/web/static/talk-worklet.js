// Push-to-talk's audio worklet: the microphone at the context's rate, low-passed and resampled to 8 kHz by
// averaging each output period's input samples (a box filter: enough against aliasing for speech), cut
// into frames of `frameSamples` int16 samples posted to the page.
class NvrTalkProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { outRate = 8000, frameSamples = 160 } = options.processorOptions || {};
    this.ratio = sampleRate / outRate;  // input samples per output sample, fractional (44.1 kHz: 5.5125)
    this.frameSamples = frameSamples;
    this.frame = new Int16Array(frameSamples); this.filled = 0;
    this.sum = 0; this.count = 0; this.pos = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;  // no microphone data in this quantum (not started yet, or muted)
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i]; this.count += 1; this.pos += 1;
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio;
        const x = Math.max(-1, Math.min(1, this.sum / this.count));
        this.sum = 0; this.count = 0;
        this.frame[this.filled++] = Math.round(x * 32767);
        if (this.filled === this.frameSamples) {
          this.port.postMessage(this.frame.buffer, [this.frame.buffer]);  // transferred: `frame` is empty now
          this.frame = new Int16Array(this.frameSamples); this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("nvr-talk", NvrTalkProcessor);
