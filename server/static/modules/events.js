// Live updates: GET /events read with fetch(), so the key can go in a header; reconnects by itself.
import { api, ApiError, hasKey, messageOf } from "./api.js";
import { setConnection, sleep, ui } from "./dom.js";
import { apply, drop, items, loadPage, place, resync, shows } from "./gallery.js";

// Keep-alive comments come every 15 s: a stream silent for longer than this is gone.
const STREAM_SILENCE_MS = 40000;
const RECONNECT_MAX_MS = 5000;

let streamGeneration = 0;

function sseParser(onEvent) {
  let buffer = "";
  let type = "";
  let data = [];
  return (chunk) => {
    buffer += chunk;
    // A chunk may end between "\r" and "\n": keep a trailing "\r" for the next one.
    const held = buffer.endsWith("\r") ? "\r" : "";
    const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
    buffer = lines.pop() + held;
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    }
  };
}

function onEvent(type, data) {
  const body = JSON.parse(data);
  if (type === "deleted") return drop(body.media_id);
  if (type !== "status") return;
  if (items.has(body.media_id)) return apply(body.media_id, body);
  if (shows(body)) place(body);
}

async function readStream(response, generation) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = sseParser(onEvent);
  let watchdog = 0;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => reader.cancel(), STREAM_SILENCE_MS);
  };
  try {
    arm();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== streamGeneration) return;
      arm();
      feed(value);
    }
  } finally {
    clearTimeout(watchdog);
    reader.cancel().catch(() => {});
  }
}

async function follow() {
  const generation = ++streamGeneration;
  let delay = 1000;
  let connectedBefore = false;
  while (generation === streamGeneration) {
    try {
      const response = await api("/events", { headers: { Accept: "text/event-stream" }, cache: "no-store" });
      if (!response.ok) throw new ApiError(response.status, await messageOf(response));
      setConnection("live", "Live");
      delay = 1000;
      // Listed only once the stream is open, so no change can fall in between.
      if (connectedBefore) resync();
      else loadPage({ reset: true });
      connectedBefore = true;
      await readStream(response, generation);
    } catch (error) {
      if (error.status === 401) return;
    }
    if (generation !== streamGeneration) return;
    setConnection("offline", "Reconnecting…");
    await sleep(delay);
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

export function start() {
  setConnection("connecting", "Connecting…");
  ui.forgetKey.hidden = !hasKey();
  follow();
}

// Ends the stream being read (without a key it can only fail); start() begins a new one.
export function stop() {
  streamGeneration += 1;
}
