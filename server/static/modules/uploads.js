// Uploads: files chosen or dropped, each sent with tus (the resumable protocol at /uploads/, by
// tus-js-client) with progress, its name and an idempotency key; a dropped connection resumes from
// what the server has, and so does the same file chosen again after a reload (tus-js-client keeps
// each unfinished upload's URL in localStorage under the file's name, size and date). Retried when
// the server is busy or out of reach; a send that still failed can be retried by hand, a file the
// server refused only dismissed.
import "./tus-js-client.js"; // a UMD bundle: it sets window.tus
import { api, authHeaders, keyReady, needKey } from "./api.js";
import { announce, el, sleep, ui } from "./dom.js";
import {
  apply, becomeMedia, card, items, position, refresh, reorderSoon, setActions, setState, showCount,
} from "./gallery.js";
import { UNREACHABLE } from "./words.js";

const PARALLEL_UPLOADS = 3;
const UPLOAD_ATTEMPTS = 4;
const MAX_RETRY_SECONDS = 30;
// Bytes per PATCH: under the body caps of proxies (Cloudflare's is 100 MB), few requests per file.
const CHUNK_BYTES = 8 * 1024 * 1024;
const MEDIA_ID_HEADER = "Thumbnailify-Media-Id";
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

function answerOf(status, text, retryAfter) {
  let body = null;
  try { body = JSON.parse(text); } catch { /* a proxy's HTML page, say */ }
  return {
    status,
    body,
    message: (body && body.message) || `The server answered ${status}.`,
    retryAfter: retryAfter === null || retryAfter === undefined ? null : Number(retryAfter),
  };
}

const LOST = { status: 0, body: null, message: UNREACHABLE, retryAfter: null };

// The item's status once the upload has all its bytes: the last PATCH names its media_id. An upload
// that already had them (its finishing PATCH answered 503 before a reload, say) is finished by
// sending its last, empty PATCH again.
async function finished(tusUpload, lastResponse) {
  let mediaId = lastResponse && lastResponse.getHeader(MEDIA_ID_HEADER);
  try {
    if (!mediaId) {
      const known = await api(tusUpload.url, { headers: { "Tus-Resumable": "1.0.0" } });
      if (!known.ok) return answerOf(known.status, await known.text(), known.headers.get("Retry-After"));
      mediaId = (await known.json()).media_id;
    }
    if (!mediaId) {
      const last = await api(tusUpload.url, { method: "PATCH", headers: {
        "Tus-Resumable": "1.0.0", "Upload-Offset": String(tusUpload.file.size),
        "Content-Type": "application/offset+octet-stream" } });
      if (!last.ok) return answerOf(last.status, await last.text(), last.headers.get("Retry-After"));
      mediaId = last.headers.get(MEDIA_ID_HEADER);
    }
    const status = await api(`/images/${encodeURIComponent(mediaId)}`);
    const answer = answerOf(status.status, await status.text(), status.headers.get("Retry-After"));
    // An item the worker already failed answers with the worker's code (422, say): it was still
    // accepted, and its card shows the Error like any other item's.
    return answer.body && answer.body.media_id === mediaId ? { ...answer, status: 202 } : answer;
  } catch (error) {
    return error.status ? answerOf(error.status, "", null) : LOST; // a 401 (api.js asked for the key)
  }
}

// One attempt: from where the server is (a new upload, the one this job began, or one a
// previous page began with this file), to the item's status or the error that stopped it.
function send(job, progress) {
  return new Promise((resolve) => {
    const { file, key } = job;
    if (!job.tus) {
      job.tus = new window.tus.Upload(file, {
        endpoint: "/uploads/",
        chunkSize: CHUNK_BYTES,
        retryDelays: null, // the page's own retries below, with its messages and Retry-After
        removeFingerprintOnSuccess: true,
        metadata: { filename: file.name, filetype: mediaTypeOf(file), idempotency_key: key },
        onBeforeRequest: (request) => {
          for (const [name, value] of Object.entries(authHeaders())) request.setHeader(name, value);
        },
      });
    }
    const upload = job.tus;
    upload.options.onProgress = (sent, total) => {
      if (total) progress.value = sent / total;
    };
    upload.options.onChunkComplete = (_chunk, sent) => { job.sent = sent; };
    upload.options.onSuccess = ({ lastResponse }) => finished(upload, lastResponse).then(resolve);
    upload.options.onError = (error) => {
      const response = error.originalResponse;
      resolve(response ? answerOf(response.getStatus(), response.getBody(), response.getHeader("Retry-After")) : LOST);
    };
    if (job.resumed) {
      upload.start();
      return;
    }
    job.resumed = true;
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, () => upload.start());
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
  const { item } = job; // the same upload and key on every retry: the server never makes two
  const progress = item.querySelector("progress");
  for (let attempt = 1; ; attempt += 1) {
    setState(item, "Uploading", attempt > 1 ? `Trying again (${attempt} of ${UPLOAD_ATTEMPTS})…` : "");
    const sentBefore = job.sent;
    const answer = await send(job, progress);
    if (job.sent > sentBefore) attempt = 1; // it got further: a flaky link, not a dead one
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
    queue.push({ file, item, key: idempotencyKey(), sent: 0 });
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
