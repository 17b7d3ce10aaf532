// The fullduplex browser client: microphone -> server, server -> speakers, text and a timeline.
// Audio travels as raw 16-bit PCM at 24 kHz (message kind 0x80, opened with ?format=pcm; see
// docs/protocol.md), so nothing here needs an Opus library.
"use strict";

const KIND = {HANDSHAKE: 0, AUDIO: 1, TEXT: 2, CONTROL: 3, METADATA: 4, ERROR: 5, PING: 6, PCM: 0x80};
const SAMPLE_RATE = 24000, FRAME = 1920;
// query parameter -> the key of the metadata's "sampling" that reports it
const SAMPLING_FIELDS = {text_temperature: "temp_text", text_topk: "top_k_text",
                         audio_temperature: "temp", audio_topk: "top_k", padding_bonus: "padding_bonus",
                         onset_temp_text: "onset_temp_text", onset_padding_bonus: "onset_padding_bonus"};
const $ = (id) => document.getElementById(id);

// Numbers the page exposes (also read by the end-to-end test).
window.fdStats = {state: "idle", framesSent: 0, framesReceived: 0, textPieces: 0, played: 0, dropped: 0,
                  underruns: 0, errors: [], text: ""};
const stats = window.fdStats;

let ws = null, ctx = null, mic = null, capture = null, playback = null;
// The timeline runs on the microphone's clock: one column per captured 80 ms frame, holding the
// level of the user, the level of the system audio that arrived meanwhile, and its text.
const timeline = [];

function setStatus(text, cls) {
  stats.state = text;
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (cls || "");
}

function rms(x) {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, x.length));
}

function chatUrl() {
  const p = new URLSearchParams({format: "pcm"});
  // sampling settings of this session; an empty field leaves the server's setting
  for (const k of Object.keys(SAMPLING_FIELDS)) if ($(k).value.trim()) p.set(k, $(k).value.trim());
  const token = $("token").value;
  if (token) p.set("token", token);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/api/chat?${p}`;
}

async function start() {
  $("start").disabled = true;
  $("stop").disabled = false;
  $("text").textContent = "";
  stats.text = "";
  setStatus("starting");
  try {
    ctx = new AudioContext({sampleRate: SAMPLE_RATE, latencyHint: "interactive"});
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    await ctx.audioWorklet.addModule("/static/playback-worklet.js");
    mic = await navigator.mediaDevices.getUserMedia({audio: {
      echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1}});
    const target = Math.round(Number($("jitter_ms").value) * SAMPLE_RATE / 1000) || 2 * FRAME;
    playback = new AudioWorkletNode(ctx, "playback-processor",
                                    {outputChannelCount: [1], processorOptions: {target, max: 3 * target}});
    playback.port.onmessage = (e) => Object.assign(stats, e.data);
    playback.connect(ctx.destination);
    capture = new AudioWorkletNode(ctx, "capture-processor", {processorOptions: {frameSize: FRAME}});
    ctx.createMediaStreamSource(mic).connect(capture);
    await ctx.resume();
  } catch (err) {
    fail("audio setup failed: " + err);
    return;
  }
  ws = new WebSocket(chatUrl());
  ws.binaryType = "arraybuffer";
  ws.onmessage = onMessage;
  ws.onclose = (e) => { if (stats.state !== "stopped") setStatus(`closed (${e.code}${e.reason ? ": " + e.reason : ""})`, e.code === 1000 ? "" : "error"); cleanup(); };
  ws.onerror = () => fail("connection error");
  capture.port.onmessage = (e) => sendFrame(e.data);
}

function sendFrame(frame) {
  timeline.push({user: rms(frame), system: 0, text: ""});
  if (timeline.length > 2000) timeline.splice(0, 1000);
  if (!ws || ws.readyState !== WebSocket.OPEN || stats.state !== "live") return;
  const msg = new Uint8Array(1 + 2 * frame.length);
  msg[0] = KIND.PCM;
  const view = new DataView(msg.buffer);
  for (let i = 0; i < frame.length; i++) {
    const v = Math.max(-1, Math.min(1, frame[i]));
    view.setInt16(1 + 2 * i, Math.round(v * 32767), true);
  }
  ws.send(msg);
  stats.framesSent += 1;
}

function onMessage(e) {
  const data = new Uint8Array(e.data);
  if (!data.length) return;
  const kind = data[0], payload = data.subarray(1);
  if (kind === KIND.HANDSHAKE) {
    setStatus("live", "live");
  } else if (kind === KIND.PCM) {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const pcm = new Float32Array(payload.byteLength >> 1);
    for (let i = 0; i < pcm.length; i++) pcm[i] = view.getInt16(2 * i, true) / 32768;
    playback.port.postMessage(pcm, [pcm.buffer]);
    const col = timeline[timeline.length - 1];
    if (col) col.system = Math.max(col.system, rms(pcm));
    stats.framesReceived += 1;
  } else if (kind === KIND.TEXT) {
    const piece = new TextDecoder().decode(payload);
    stats.text += piece;
    stats.textPieces += 1;
    $("text").textContent = stats.text;
    const col = timeline[timeline.length - 1];
    if (col) col.text += piece;
  } else if (kind === KIND.METADATA) {
    try {
      const m = JSON.parse(new TextDecoder().decode(payload));
      const s = m.sampling || {};
      stats.sampling = s;
      // an onset setting of null follows its general one
      for (const [k, key] of Object.entries(SAMPLING_FIELDS))
        if (key in s) $(k).placeholder = s[key] === null ? "as when speaking" : String(s[key]);
      $("server_sampling").textContent = (m.sampling_per_session ? "this session's sampling: " : "server sampling: ") +
        JSON.stringify(s) + (m.ignored && m.ignored.length ? ` (ignored: ${m.ignored.join(", ")})` : "");
    } catch (err) { /* metadata is informational */ }
  } else if (kind === KIND.ERROR) {
    const msg = new TextDecoder().decode(payload);
    stats.errors.push(msg);
    setStatus("error: " + msg, "error");
  }
  // other kinds (ping, control, Moshi's audio) are ignored here
}

function fail(msg) {
  stats.errors.push(msg);
  setStatus(msg, "error");
  cleanup();
}

function stop() {
  setStatus("stopped");
  if (ws) ws.close(1000);
  cleanup();
}

function cleanup() {
  if (mic) mic.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  ws = null; mic = null; ctx = null; capture = null; playback = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

function drawTimeline() {
  const c = $("timeline"), g = c.getContext("2d");
  const W = c.width, H = c.height, half = (H - 14) / 2, n = Math.floor(W / 4);
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#eee"; g.fillRect(0, half - 0.5, W, 1);
  const from = Math.max(0, timeline.length - n);
  g.font = "10px sans-serif";
  let textEnd = -1;
  for (let i = from; i < timeline.length; i++) {
    const x = (i - from) * 4, col = timeline[i];
    for (const [level, y0, color] of [[col.user, 0, "#37c"], [col.system, half, "#d63"]]) {
      const h = Math.min(1, level * 4) * (half - 4);
      g.fillStyle = color;
      g.fillRect(x, y0 + (half - h) / 2, 3, Math.max(1, h));
    }
    const word = col.text.trim();
    if (word && x > textEnd) {  // labels that would overlap the previous one are left out
      g.fillStyle = "#222";
      g.fillText(word, x, H - 2);
      textEnd = x + g.measureText(word).width + 3;
    }
  }
  $("stats").textContent = `sent ${stats.framesSent} frames, received ${stats.framesReceived}, ` +
    `played ${(stats.played / SAMPLE_RATE).toFixed(1)} s, dropped ${(stats.dropped / SAMPLE_RATE).toFixed(2)} s, ` +
    `underruns ${stats.underruns}`;
  requestAnimationFrame(drawTimeline);
}

$("start").onclick = start;
$("stop").onclick = stop;
requestAnimationFrame(drawTimeline);
