// AudioWorklet: microphone float32 -> 16-bit little-endian PCM at `targetRate`, posted as ~100 ms ArrayBuffers.
// When the context runs faster than targetRate (a browser that ignored AudioContext({sampleRate})), each output
// sample is the mean of the input samples it covers: a box filter against aliasing, then decimation.

class PcmWorklet extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 100 } = options.processorOptions || {};
    this.rate = Math.min(targetRate, sampleRate); // never upsample: the page sends the real rate then
    this.step = sampleRate / this.rate; // input samples per output sample (1 when the rates match)
    this.samples = Math.round((this.rate * frameMs) / 1000);
    this.frame = new DataView(new ArrayBuffer(this.samples * 2));
    this.filled = 0;
    this.pos = this.step; // where the next output sample ends, in input samples from the current block's start
    this.sum = 0;
    this.count = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // no input yet (or the track ended): keep the node alive
    if (this.step === 1) {
      for (let i = 0; i < channel.length; i++) this.push(channel[i]);
      return true;
    }
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count++;
      if (i + 1 >= this.pos) {
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
        this.pos += this.step;
      }
    }
    this.pos -= channel.length;
    return true;
  }

  push(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame.setInt16(2 * this.filled++, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    if (this.filled === this.samples) {
      const out = this.frame.buffer;
      this.port.postMessage(out, [out]); // transferred: the worklet starts a fresh buffer
      this.frame = new DataView(new ArrayBuffer(this.samples * 2));
      this.filled = 0;
    }
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
