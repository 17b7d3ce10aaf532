// Jitter-buffered playback: start once `target` samples are queued; when more than `max` samples
// are queued (audio arriving late in a burst), drop the oldest down to `target` so playback stays
// close to live; on an underrun, play silence and wait for `target` samples again.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.target = o.target || 3840;
    this.max = o.max || 3 * this.target;
    this.chunks = []; this.offset = 0; this.queued = 0; this.playing = false;
    this.played = 0; this.dropped = 0; this.underruns = 0; this.blocks = 0;
    this.port.onmessage = (e) => {
      const d = e.data;
      if (d.reset) { this.chunks = []; this.offset = 0; this.queued = 0; this.playing = false; return; }
      this.chunks.push(d); this.queued += d.length;
      while (this.queued - this.target > 0 && this.queued > this.max) {
        const first = this.chunks[0];
        const excess = Math.min(first.length - this.offset, this.queued - this.target);
        this.offset += excess; this.queued -= excess; this.dropped += excess;
        if (this.offset >= first.length) { this.chunks.shift(); this.offset = 0; }
      }
    };
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    if (!this.playing && this.queued >= this.target) this.playing = true;
    if (this.playing) {
      let i = 0;
      while (i < out.length && this.chunks.length) {
        const c = this.chunks[0];
        const take = Math.min(out.length - i, c.length - this.offset);
        out.set(c.subarray(this.offset, this.offset + take), i);
        i += take; this.offset += take; this.queued -= take; this.played += take;
        if (this.offset >= c.length) { this.chunks.shift(); this.offset = 0; }
      }
      if (i < out.length) { this.playing = false; this.underruns += 1; }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (++this.blocks % 20 === 0) {
      this.port.postMessage({played: this.played, dropped: this.dropped, queued: this.queued,
                             underruns: this.underruns});
    }
    return true;
  }
}
registerProcessor("playback-processor", PlaybackProcessor);
