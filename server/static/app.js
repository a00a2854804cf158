// Thumbnailify's page: upload with progress, live states from GET /events, the gallery.
// Plain script, no build step. Hooks for automation (README, "Web page"): each item is an
// element with data-media-id and data-state, its thumbnail <img data-role="thumbnail">, its
// delete button data-role="delete".
"use strict";

(() => {
  const KEY_STORE = "thumbnailify.apiKey";
  const NAMES_STORE = "thumbnailify.names";
  const PAGE_SIZE = 24;
  const PARALLEL_UPLOADS = 3;
  const UPLOAD_ATTEMPTS = 4;
  const MAX_RETRY_SECONDS = 30;
  const MAX_NAMES = 1000;
  // Keep-alive comments come every 15 s: a stream silent for longer than this is gone.
  const STREAM_SILENCE_MS = 40000;
  const RECONNECT_MAX_MS = 5000;
  // What a file's extension says when the browser names no type (HEIC on most systems).
  const TYPES_BY_EXTENSION = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", gif: "image/gif", webp: "image/webp",
    heic: "image/heic", heif: "image/heif", avif: "image/avif",
    mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm",
  };

  const $ = (selector) => document.querySelector(selector);
  const ui = {
    connection: $("#connection"), notice: $("#notice"), forgetKey: $("#forget-key"),
    keyForm: $("#key-form"), keyInput: $("#api-key"), keyError: $("#key-error"),
    dropZone: $("#drop-zone"), files: $("#files"), filter: $("#state-filter"),
    gallery: $("#gallery"), empty: $("#empty"), more: $("#load-more"), announce: $("#announce"),
    viewer: $("#viewer"), viewerTitle: $("#viewer-title"), viewerImage: $("#viewer-image"),
    viewerDetails: $("#viewer-details"), viewerHistory: $("#viewer-history"),
  };

  let apiKey = sessionStorage.getItem(KEY_STORE) || "";
  let filter = "";
  let nextCursor = null;
  let streamGeneration = 0;
  let keyWaiters = [];
  const items = new Map(); // media_id -> its <li>
  const statuses = new Map(); // media_id -> the newest status body seen
  const thumbnails = new Map(); // media_id -> blob: URL of its thumbnail
  const names = new Map(Object.entries(JSON.parse(sessionStorage.getItem(NAMES_STORE) || "{}")));

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const authHeaders = () => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name in node && !name.startsWith("aria")) node[name] = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function announce(text) {
    ui.announce.textContent = text;
  }

  function showNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  function setConnection(state, text) {
    ui.connection.dataset.connection = state;
    ui.connection.textContent = text;
  }

  async function messageOf(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.message === "string") return body.message;
    } catch { /* not JSON: the text itself, below */ }
    return text.trim().slice(0, 200) || `${response.status} ${response.statusText}`;
  }

  // -- the API key ---------------------------------------------------------------------------
  function needKey() {
    const wasWrong = Boolean(apiKey);
    apiKey = "";
    sessionStorage.removeItem(KEY_STORE);
    ui.forgetKey.hidden = true;
    ui.keyError.textContent = wasWrong ? "That key was not accepted; check it and try again." : "";
    if (ui.keyForm.hidden) {
      ui.keyForm.hidden = false;
      ui.keyInput.focus();
    }
    setConnection("offline", "Needs an API key");
    streamGeneration += 1; // the event stream starts again once there is a key
  }

  function keyReady() {
    return apiKey ? Promise.resolve() : new Promise((resolve) => keyWaiters.push(resolve));
  }

  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = ui.keyInput.value.trim();
    if (!apiKey) return;
    sessionStorage.setItem(KEY_STORE, apiKey);
    ui.keyInput.value = "";
    ui.keyForm.hidden = true;
    ui.forgetKey.hidden = false;
    const waiters = keyWaiters;
    keyWaiters = [];
    waiters.forEach((resolve) => resolve());
    start();
  });

  ui.forgetKey.addEventListener("click", () => {
    for (const id of [...items.keys()]) drop(id);
    needKey();
    ui.keyError.textContent = "";
  });

  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
    if (response.status === 401) {
      needKey();
      throw new ApiError(401, "This server needs an API key.");
    }
    return response;
  }

  async function apiOk(path, options) {
    const response = await api(path, options);
    if (!response.ok) throw new ApiError(response.status, await messageOf(response));
    return response;
  }

  // -- items -----------------------------------------------------------------------------------
  function rememberName(id, name) {
    names.set(id, name);
    while (names.size > MAX_NAMES) names.delete(names.keys().next().value);
    sessionStorage.setItem(NAMES_STORE, JSON.stringify(Object.fromEntries(names)));
  }

  function typeLabel(mediaType) {
    return (mediaType || "file").split("/").pop().replace("quicktime", "mov").toUpperCase();
  }

  function nameOf(id) {
    const status = statuses.get(id);
    return names.get(id) || `${typeLabel(status && status.media_type)} ${id.slice(0, 8)}`;
  }

  function newer(known, incoming) {
    // Events and GETs may cross: never let an older status replace a newer one.
    if (!known) return incoming;
    return (incoming.updated_at || "") >= (known.updated_at || "") ? incoming : known;
  }

  function card(name, state) {
    const item = el("li", { className: "item", dataset: { state } }, [
      el("div", { className: "frame" }, [el("span", { className: "placeholder", "aria-hidden": "true" }, ["…"])]),
      el("div", { className: "meta" }, [
        el("p", { className: "name", title: name }, [name]),
        el("p", { className: "when" }),
        el("p", { className: "state", dataset: { role: "state" } }, [state]),
        el("p", { className: "message", dataset: { role: "message" } }),
        el("p", { className: "actions" }),
      ]),
    ]);
    return item;
  }

  function setState(item, state, message) {
    item.dataset.state = state;
    item.querySelector("[data-role=state]").textContent = state;
    const text = item.querySelector("[data-role=message]");
    text.textContent = message || "";
    text.title = message || ""; // long messages are cut short on the card; the whole one on hover and in the details
  }

  function setActions(item, ...buttons) {
    item.querySelector(".actions").replaceChildren(...buttons);
  }

  function deleteButton(id) {
    const button = el("button", { type: "button", className: "delete", dataset: { role: "delete" } }, ["Delete"]);
    button.setAttribute("aria-label", `Delete ${nameOf(id)}`);
    button.addEventListener("click", () => remove(id, button));
    return button;
  }

  function becomeMedia(item, status) {
    const id = status.media_id;
    item.dataset.mediaId = id;
    items.set(id, item);
    const frame = item.querySelector(".frame");
    if (!frame.querySelector(".open")) {
      // The thumbnail (or, until there is one, the type) opens the larger view and the details.
      const open = el("button", { type: "button", className: "open", title: "Open the larger view and details" },
        [el("span", { className: "placeholder" }, [typeLabel(status.media_type)])]);
      open.setAttribute("aria-label", `Open ${nameOf(id)}`);
      open.addEventListener("click", () => openViewer(id));
      frame.replaceChildren(open);
    }
    if (status.created_at) {
      const when = new Date(status.created_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      item.querySelector(".when").replaceChildren(el("time", { dateTime: status.created_at }, [`Added ${when}`]));
    }
    setActions(item, deleteButton(id));
  }

  function itemFor(status) {
    const item = card(nameOf(status.media_id), status.state);
    becomeMedia(item, status);
    return item;
  }

  function apply(id, incoming) {
    const before = statuses.get(id);
    const status = newer(before, incoming);
    statuses.set(id, status);
    const item = items.get(id);
    if (!item) return;
    setState(item, status.state, status.message);
    if (status.state === "Completed" && !thumbnails.has(id)) showThumbnail(id);
    if (before && before.state !== status.state && status.state !== "Processing") {
      announce(`${nameOf(id)}: ${status.state}. ${status.message || ""}`);
    }
  }

  async function showThumbnail(id) {
    thumbnails.set(id, null); // claimed: one fetch per item
    try {
      const response = await apiOk(`/images/${encodeURIComponent(id)}/thumbnail?encoding=binary`);
      const url = URL.createObjectURL(await response.blob());
      const item = items.get(id);
      if (!item) return URL.revokeObjectURL(url);
      thumbnails.set(id, url);
      const image = el("img", { alt: `Thumbnail of ${nameOf(id)}`, src: url, dataset: { role: "thumbnail" } });
      item.querySelector(".frame .open").replaceChildren(image);
    } catch (error) {
      thumbnails.delete(id);
      const item = items.get(id);
      if (item) item.querySelector("[data-role=message]").textContent = `Thumbnail: ${error.message}`;
    }
  }

  function drop(id) {
    const item = items.get(id);
    if (item) item.remove();
    items.delete(id);
    statuses.delete(id);
    const url = thumbnails.get(id);
    if (url) URL.revokeObjectURL(url);
    thumbnails.delete(id);
    ui.empty.hidden = ui.gallery.children.length > 0;
  }

  async function remove(id, button) {
    button.disabled = true;
    const name = nameOf(id);
    try {
      await apiOk(`/images/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) {
        button.disabled = false;
        const item = items.get(id);
        if (item) item.querySelector("[data-role=message]").textContent = `Not deleted: ${error.message}`;
        return;
      }
    }
    const item = items.get(id);
    const next = item && (item.nextElementSibling || item.previousElementSibling);
    drop(id);
    announce(`${name} deleted.`);
    const focusTarget = next && next.querySelector("button");
    (focusTarget || ui.filter).focus();
  }

  function place(status, where) {
    const id = status.media_id;
    if (items.has(id)) return apply(id, status);
    statuses.set(id, status);
    const item = itemFor(status);
    if (where === "top") ui.gallery.prepend(item);
    else ui.gallery.append(item);
    ui.empty.hidden = true;
    apply(id, status);
  }

  // -- the gallery ------------------------------------------------------------------------------
  async function loadPage({ reset }) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filter) query.set("state", filter);
    if (!reset && nextCursor) query.set("cursor", nextCursor);
    ui.more.disabled = true;
    try {
      const body = await (await apiOk(`/images?${query}`)).json();
      if (reset) {
        for (const id of [...items.keys()]) drop(id);
      }
      for (const status of body.items) place(status, "bottom");
      nextCursor = body.next;
      ui.more.hidden = !nextCursor;
      ui.empty.hidden = ui.gallery.children.length > 0;
      showNotice("");
    } catch (error) {
      if (error.status !== 401) showNotice(`Could not load the gallery: ${error.message}`);
    } finally {
      ui.more.disabled = false;
    }
  }

  // After the event stream was down: what changed meanwhile, without losing the pages shown.
  async function resync() {
    for (const [id, status] of statuses) {
      if (status.state === "Processing") refresh(id);
    }
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filter) query.set("state", filter);
    try {
      const body = await (await apiOk(`/images?${query}`)).json();
      for (const status of [...body.items].reverse()) place(status, "top");
    } catch { /* the stream's own reconnect will try again */ }
  }

  async function refresh(id) {
    const response = await api(`/images/${encodeURIComponent(id)}`).catch(() => null);
    if (!response) return;
    if (response.status === 404) return drop(id);
    const body = await response.json().catch(() => null);
    if (body && body.media_id === id && body.state) apply(id, body);
  }

  ui.more.addEventListener("click", () => loadPage({ reset: false }));
  ui.filter.addEventListener("change", () => {
    filter = ui.filter.value;
    loadPage({ reset: true });
  });

  // -- live updates: GET /events read with fetch(), so the key can go in a header ---------------
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
    if (!filter || body.state === filter) place(body, "top");
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

  function start() {
    setConnection("connecting", "Connecting…");
    ui.forgetKey.hidden = !apiKey;
    follow();
  }

  // -- uploads ----------------------------------------------------------------------------------
  const queue = [];
  let uploading = 0;

  function mediaTypeOf(file) {
    const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
    return file.type || TYPES_BY_EXTENSION[extension] || "application/octet-stream";
  }

  function idempotencyKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function send(file, key, progress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/images?encoding=binary");
      xhr.setRequestHeader("Content-Type", mediaTypeOf(file));
      xhr.setRequestHeader("Idempotency-Key", key);
      if (apiKey) xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = event.loaded / event.total;
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { /* a proxy's HTML page, say */ }
        const retryAfter = xhr.getResponseHeader("Retry-After");
        resolve({
          status: xhr.status,
          body,
          message: (body && body.message) || `${xhr.status} ${xhr.statusText}`,
          retryAfter: retryAfter === null ? null : Number(retryAfter),
        });
      });
      const lost = () => resolve({ status: 0, body: null, message: "Could not reach the server.", retryAfter: null });
      xhr.addEventListener("error", lost);
      xhr.addEventListener("abort", lost);
      xhr.addEventListener("timeout", lost);
      xhr.send(file);
    });
  }

  function accepted(item, status, filename) {
    const id = status.media_id;
    rememberName(id, filename);
    const shown = items.get(id);
    if (shown && shown !== item) {
      // Its first events arrived before this answer: keep what they showed, in this card's place.
      item.querySelector(".frame").replaceWith(shown.querySelector(".frame"));
      shown.remove();
    }
    item.querySelector("progress").remove();
    becomeMedia(item, status);
    apply(id, status);
    refresh(id); // in case the stream was reconnecting while it changed
  }

  function refused(item, message) {
    setState(item, "Refused", message);
    item.querySelector("progress").remove();
    const dismiss = el("button", { type: "button", className: "dismiss", dataset: { role: "dismiss" } }, ["Dismiss"]);
    dismiss.addEventListener("click", () => {
      item.remove();
      ui.empty.hidden = ui.gallery.children.length > 0;
    });
    setActions(item, dismiss);
    announce(`${item.dataset.filename} was refused: ${message}`);
  }

  async function upload({ file, item }) {
    const key = idempotencyKey(); // the same on every retry: the server never makes two
    const progress = item.querySelector("progress");
    for (let attempt = 1; ; attempt += 1) {
      setState(item, "Uploading", attempt > 1 ? `Trying again (${attempt} of ${UPLOAD_ATTEMPTS})…` : "");
      const answer = await send(file, key, progress);
      if (answer.status === 202 && answer.body) return accepted(item, answer.body, file.name);
      if (answer.status === 401) {
        needKey();
        setState(item, "Uploading", "Waiting for the API key…");
        await keyReady();
        attempt -= 1;
        continue;
      }
      const busy = (answer.status === 503 && answer.retryAfter !== null) || answer.status === 409 || answer.status === 0;
      if (!busy || attempt >= UPLOAD_ATTEMPTS) return refused(item, answer.message);
      const seconds = Math.min(answer.retryAfter ?? attempt, MAX_RETRY_SECONDS);
      setState(item, "Uploading", `${answer.message} Retrying in ${seconds} s…`);
      await sleep(seconds * 1000);
    }
  }

  function pump() {
    while (uploading < PARALLEL_UPLOADS && queue.length) {
      uploading += 1;
      upload(queue.shift()).finally(() => {
        uploading -= 1;
        pump();
      });
    }
  }

  function add(files) {
    for (const file of files) {
      const item = card(file.name, "Uploading");
      item.dataset.filename = file.name;
      item.querySelector(".placeholder").textContent = typeLabel(mediaTypeOf(file));
      const progress = el("progress", { max: 1, value: 0, dataset: { role: "progress" } });
      progress.setAttribute("aria-label", `Uploading ${file.name}`);
      item.querySelector(".state").before(progress);
      ui.gallery.prepend(item);
      queue.push({ file, item });
    }
    ui.empty.hidden = ui.gallery.children.length > 0;
    if (files.length) announce(`Uploading ${files.length} file${files.length === 1 ? "" : "s"}.`);
    pump();
  }

  ui.files.addEventListener("change", () => {
    add([...ui.files.files]);
    ui.files.value = ""; // the same file may be chosen again
  });

  const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      ui.dropZone.classList.add("over");
    });
  }
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) ui.dropZone.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    ui.dropZone.classList.remove("over");
    add([...event.dataTransfer.files]);
  });

  // -- the larger view ----------------------------------------------------------------------------
  function largestSize(status) {
    const sizes = Object.entries(status.sizes || {});
    if (sizes.length < 2) return null;
    const area = ([, [width, height]]) => width * height;
    return sizes.reduce((best, size) => (area(size) > area(best) ? size : best))[0];
  }

  function detail(term, value) {
    return value ? [el("dt", {}, [term]), el("dd", {}, [String(value)])] : [];
  }

  async function openViewer(id) {
    const status = statuses.get(id);
    if (!status) return;
    const size = largestSize(status);
    ui.viewerTitle.textContent = nameOf(id);
    ui.viewerImage.alt = `${size ? "Larger thumbnail" : "Thumbnail"} of ${nameOf(id)}`;
    ui.viewerImage.src = thumbnails.get(id) || "";
    ui.viewerImage.hidden = !thumbnails.get(id);
    const sizes = Object.entries(status.sizes || {}).map(([name, [w, h]]) => `${name} ${w}×${h}`).join(", ");
    ui.viewerDetails.replaceChildren(
      ...detail("Type", status.media_type), ...detail("State", status.state), ...detail("Message", status.message),
      ...detail("Added", status.created_at && new Date(status.created_at).toLocaleString()),
      ...detail("Sizes", sizes), ...detail("SHA-256", status.sha256), ...detail("Media ID", id));
    ui.viewerHistory.replaceChildren(...(status.history || []).map((entry) =>
      el("li", {}, [`${new Date(entry.at).toLocaleTimeString()} ${entry.service}: ${entry.state} — ${entry.message}`])));
    ui.viewer.showModal();
    if (!size || status.state !== "Completed") return;
    try {
      const query = new URLSearchParams({ encoding: "binary", size });
      const response = await apiOk(`/images/${encodeURIComponent(id)}/thumbnail?${query}`);
      const url = URL.createObjectURL(await response.blob());
      if (!ui.viewer.open) return URL.revokeObjectURL(url);
      ui.viewerImage.src = url;
      ui.viewer.addEventListener("close", () => URL.revokeObjectURL(url), { once: true });
    } catch { /* the default thumbnail stays shown */ }
  }

  start();
})();
