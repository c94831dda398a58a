// The live page: microphone -> AudioWorklet (16 kHz pcm_s16le, 100 ms frames) -> WebSocket /v1/stream.
// The protocol is services/http/stream.py's docstring; session history is GET /v1/sessions/{id}.

const TARGET_RATE = 16000;
const SESSION_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const STORE = { session: "seedasr.session", apiKey: "seedasr.apiKey", hotwords: "seedasr.hotwords" };
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), session: $("session"), newSession: $("new-session"), apiKey: $("api-key"),
  hotwords: $("hotwords"), start: $("start"), transcript: $("transcript"), interim: $("interim"),
  history: $("history"), historyEmpty: $("history-empty"),
};

let live = null; // the running stream: {ws, ctx, stream, node, ready, pending, error, timer}

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = kind;
}

function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function apiKey() {
  return ui.apiKey.value.trim();
}

function hotwords() {
  return ui.hotwords.value.split(/[,\n]/).map((w) => w.trim()).filter(Boolean);
}

// ---- session history ---------------------------------------------------------------------------------------
async function loadHistory() {
  const id = ui.session.value.trim();
  if (!SESSION_ID.test(id)) return showHistory([]);
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  try {
    const resp = await fetch(`/v1/sessions/${encodeURIComponent(id)}`, { headers });
    if (resp.status === 404) return showHistory([]);
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error ? body.error.message : resp.statusText);
    if (id === ui.session.value.trim()) showHistory(body.turns || []);
    if (ui.status.textContent.startsWith("history:")) setStatus("idle");
  } catch (err) {
    setStatus(`history: ${err.message}`, "error");
  }
}

function showHistory(turns) {
  ui.history.replaceChildren(...turns.map((turn) => {
    const li = document.createElement("li");
    const when = document.createElement("time");
    const date = new Date(turn.created_unix * 1000);
    when.dateTime = date.toISOString();
    when.textContent = date.toLocaleTimeString();
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = turn.role;
    li.append(when, role, document.createTextNode(turn.text));
    return li;
  }));
  ui.historyEmpty.hidden = turns.length > 0;
}

// ---- streaming -----------------------------------------------------------------------------------------------
async function start() {
  const sessionId = ui.session.value.trim();
  if (!SESSION_ID.test(sessionId)) {
    setStatus("session id: 1-128 letters, digits and . _ : @ -", "error");
    return ui.session.focus();
  }
  remember();
  setRunning(true);
  setStatus("starting microphone…");
  const state = { ready: false, pending: [], error: "" };
  live = state;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    state.ctx = await audioContext(state.stream);
    await state.ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const rate = Math.min(TARGET_RATE, state.ctx.sampleRate);
    state.node = new AudioWorkletNode(state.ctx, "pcm-worklet", { processorOptions: { targetRate: TARGET_RATE } });
    state.node.port.onmessage = (event) => send(state, event.data);
    state.ctx.createMediaStreamSource(state.stream).connect(state.node);
    await state.ctx.resume(); // suspended when the browser no longer counts the click as a user gesture
    if (live !== state) return cleanup(state); // stopped while the microphone was starting
    connect(state, sessionId, rate);
  } catch (err) {
    setStatus(`microphone: ${err.message || err.name}`, "error");
    cleanup(state);
  }
}

// 16 kHz where the browser honours it; otherwise its own rate (the worklet downsamples).
async function audioContext(stream) {
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: TARGET_RATE });
    ctx.createMediaStreamSource(stream).disconnect(); // Firefox refuses a stream at another rate here
    return ctx;
  } catch {
    if (ctx) ctx.close();
    return new AudioContext();
  }
}

function connect(state, sessionId, rate) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  setStatus("connecting…");
  ws.onopen = () => {
    const config = {
      session_id: sessionId, sample_rate: rate, encoding: "pcm_s16le", interim_results: true,
      hotwords: hotwords(), word_timestamps: true,
    };
    if (apiKey()) config.api_key = apiKey();
    ws.send(JSON.stringify(config));
  };
  ws.onmessage = (event) => onMessage(state, JSON.parse(event.data));
  ws.onclose = (event) => {
    if (live !== state) return; // stopped before the connection opened
    if (state.error) setStatus(`${state.error} (${event.code})`, "error"); // the server said why, then closed
    else if (event.code >= 4000) setStatus(`closed ${event.code}: ${event.reason || "server error"}`, "error");
    else if (event.code === 1000) setStatus("stopped");
    else setStatus(`connection lost (${event.code})`, "error");
    cleanup(state);
  };
}

function send(state, frame) {
  if (!state.ws || !state.ready) {
    if (state.pending.length < 50) state.pending.push(frame); // up to 5 s while the server gets ready
    return;
  }
  if (state.ws.readyState === WebSocket.OPEN) state.ws.send(frame);
}

function onMessage(state, msg) {
  switch (msg.type) {
    case "ready":
      state.ready = true;
      for (const frame of state.pending.splice(0)) state.ws.send(frame);
      setStatus("listening", "live");
      break;
    case "interim":
      ui.interim.textContent = msg.text;
      break;
    case "final":
      ui.interim.textContent = "";
      if (msg.text) addFinal(msg);
      loadHistory();
      break;
    case "error":
      state.error = `${msg.code}: ${msg.message}`;
      setStatus(state.error, "error");
      break;
  }
}

function addFinal(msg) {
  const li = document.createElement("li");
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  const conf = document.createElement("span");
  conf.className = "confidence";
  conf.title = "confidence";
  conf.textContent = msg.confidence == null ? "" : `${Math.round(msg.confidence * 100)}%`;
  li.append(text, conf);
  ui.transcript.append(li);
  li.scrollIntoView({ block: "nearest" });
}

function stop() {
  const state = live;
  if (!state) return;
  stopAudio(state);
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    setStatus("finishing…");
    ui.start.disabled = true;
    state.ws.send(JSON.stringify({ type: "end" })); // the server finishes the open turn, then closes
    state.timer = setTimeout(() => state.ws.close(1000), 15000);
  } else {
    if (state.ws) state.ws.close();
    setStatus("stopped");
    cleanup(state);
  }
}

function stopAudio(state) {
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.node) state.node.port.onmessage = null;
  if (state.ctx && state.ctx.state !== "closed") state.ctx.close();
}

function cleanup(state) {
  stopAudio(state);
  clearTimeout(state.timer);
  if (live === state) {
    live = null;
    ui.interim.textContent = "";
    setRunning(false);
  }
}

function setRunning(running) {
  ui.start.textContent = running ? "Stop" : "Start";
  ui.start.setAttribute("aria-pressed", String(running));
  ui.start.disabled = false;
  ui.session.disabled = ui.newSession.disabled = ui.apiKey.disabled = ui.hotwords.disabled = running;
}

function remember() {
  localStorage.setItem(STORE.session, ui.session.value.trim());
  localStorage.setItem(STORE.hotwords, ui.hotwords.value);
  if (apiKey()) localStorage.setItem(STORE.apiKey, apiKey());
  else localStorage.removeItem(STORE.apiKey);
}

// ---- wiring --------------------------------------------------------------------------------------------------
function init() {
  ui.session.value = localStorage.getItem(STORE.session) || newSessionId();
  ui.apiKey.value = localStorage.getItem(STORE.apiKey) || "";
  ui.hotwords.value = localStorage.getItem(STORE.hotwords) || "";
  localStorage.setItem(STORE.session, ui.session.value);

  ui.session.addEventListener("change", () => {
    remember();
    ui.transcript.replaceChildren();
    loadHistory();
  });
  ui.newSession.addEventListener("click", () => {
    ui.session.value = newSessionId();
    ui.session.dispatchEvent(new Event("change"));
  });
  ui.apiKey.addEventListener("change", () => {
    remember();
    loadHistory();
  });
  ui.hotwords.addEventListener("change", remember);
  ui.start.addEventListener("click", () => (live ? stop() : start()));
  document.getElementById("settings").addEventListener("submit", (event) => event.preventDefault());
  loadHistory();
}

init();
