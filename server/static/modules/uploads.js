// Uploads: files chosen or dropped, each its own POST with progress, its name and an
// Idempotency-Key, retried (same key) when the server is busy or out of reach; a send that still
// failed can be retried by hand, a file the server refused only dismissed.
import { authHeaders, keyReady, needKey } from "./api.js";
import { announce, el, sleep, ui } from "./dom.js";
import {
  apply, becomeMedia, card, items, position, refresh, reorderSoon, setActions, setState, showCount,
} from "./gallery.js";
import { UNREACHABLE } from "./words.js";

const PARALLEL_UPLOADS = 3;
const UPLOAD_ATTEMPTS = 4;
const MAX_RETRY_SECONDS = 30;
// What a file's extension says when the browser names no type (HEIC on most systems).
const TYPES_BY_EXTENSION = {
  jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", gif: "image/gif", webp: "image/webp",
  heic: "image/heic", heif: "image/heif", avif: "image/avif",
  mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm",
};

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
    xhr.open("POST", `/images?${new URLSearchParams({ encoding: "binary", filename: file.name })}`);
    xhr.setRequestHeader("Content-Type", mediaTypeOf(file));
    xhr.setRequestHeader("Idempotency-Key", key);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
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
        message: (body && body.message) || `The server answered ${xhr.status} ${xhr.statusText}.`,
        retryAfter: retryAfter === null ? null : Number(retryAfter),
      });
    });
    const lost = () => resolve({ status: 0, body: null, message: UNREACHABLE, retryAfter: null });
    xhr.addEventListener("error", lost);
    xhr.addEventListener("abort", lost);
    xhr.addEventListener("timeout", lost);
    xhr.send(file);
  });
}

function accepted(item, status) {
  const id = status.media_id;
  const shown = items.get(id);
  if (shown && shown !== item) {
    // Its first events arrived before this answer: keep what they showed, in this card's place.
    item.querySelector(".frame").replaceWith(shown.querySelector(".frame"));
    shown.remove();
  }
  item.querySelector("progress").remove();
  becomeMedia(item, status);
  position(item); // where a reload would show it: the server's order, not the order chosen
  reorderSoon();
  apply(id, status);
  showCount();
  refresh(id); // in case the stream was reconnecting while it changed
}

function dismissButton(item) {
  const dismiss = el("button", { type: "button", className: "dismiss", dataset: { role: "dismiss" } }, ["Dismiss"]);
  dismiss.addEventListener("click", () => {
    item.remove();
    showCount();
  });
  return dismiss;
}

// The server said no (a 4xx): sending it again would get the same answer.
function refused(item, message) {
  setState(item, "Refused", message);
  item.querySelector("progress").hidden = true;
  setActions(item, dismissButton(item));
  announce(`${item.dataset.filename} was refused: ${message}`);
}

// It never got an answer worth keeping (out of reach, busy, a server fault): it may work later.
function failed(job, message) {
  const { item } = job;
  setState(item, "Failed", message);
  item.querySelector("progress").hidden = true;
  const retry = el("button", { type: "button", className: "retry", dataset: { role: "retry" } }, ["Retry"]);
  retry.addEventListener("click", () => {
    item.querySelector("progress").hidden = false;
    item.querySelector("progress").value = 0;
    setState(item, "Uploading", "Waiting for its turn…");
    setActions(item);
    queue.push(job);
    pump();
  });
  setActions(item, retry, dismissButton(item));
  announce(`${item.dataset.filename} was not sent: ${message}`);
}

const busy = (answer) => answer.status === 0 || answer.status === 408 || answer.status === 409
  || answer.status === 429 || answer.status >= 500;

async function upload(job) {
  const { file, item, key } = job; // the same key on every retry: the server never makes two
  const progress = item.querySelector("progress");
  for (let attempt = 1; ; attempt += 1) {
    setState(item, "Uploading", attempt > 1 ? `Trying again (${attempt} of ${UPLOAD_ATTEMPTS})…` : "");
    const answer = await send(file, key, progress);
    if (answer.status === 202 && answer.body) return accepted(item, answer.body);
    if (answer.status === 401) {
      needKey();
      setState(item, "Uploading", "Waiting for the API key…");
      await keyReady();
      attempt -= 1;
      continue;
    }
    if (!busy(answer)) return refused(item, answer.message);
    if (attempt >= UPLOAD_ATTEMPTS) return failed(job, answer.message);
    const seconds = Math.min(answer.retryAfter ?? attempt, MAX_RETRY_SECONDS);
    const why = answer.status === 0 ? "The server could not be reached" : "The server is busy";
    setState(item, "Uploading", `${why} — retrying in ${seconds} s…`);
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
    const item = card(file.name, "Uploading", mediaTypeOf(file));
    item.dataset.filename = file.name;
    const progress = el("progress", { max: 1, value: 0, dataset: { role: "progress" } });
    progress.setAttribute("aria-label", `Uploading ${file.name}`);
    item.querySelector(".state").before(progress);
    ui.gallery.prepend(item);
    queue.push({ file, item, key: idempotencyKey() });
  }
  showCount();
  if (files.length) announce(`Uploading ${files.length} file${files.length === 1 ? "" : "s"}.`);
  pump();
}

const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");

export function setUpUploads() {
  ui.files.addEventListener("change", () => {
    add([...ui.files.files]);
    ui.files.value = ""; // the same file may be chosen again
  });
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
}
