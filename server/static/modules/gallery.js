// The gallery: one square tile per item, its state and thumbnail, pages of the list, the state
// and name filters, selection, and delete with undo.
import { api, apiOk } from "./api.js";
import { announce, el, showNotice, ui } from "./dom.js";
import { thumbHashToRGBA } from "./thumbhash.js";
import { offerUndo } from "./undo.js";
import { openViewer } from "./viewer.js";
import { bytesText, isVideo, kindOf, plural, stateWords, untitled } from "./words.js";

const PAGE_SIZE = 24;
const TILE_PIXELS = 200; // the widest a tile is drawn, in CSS pixels
const OPAQUE_TYPES = new Set(["image/jpeg"]); // no checkerboard behind these

let filter = "";
let search = "";
let nextCursor = null;
export const items = new Map(); // media_id -> its <li>
const statuses = new Map(); // media_id -> the newest status body seen
const thumbnails = new Map(); // media_id -> blob: URL of its tile's thumbnail (null while fetched)
const selected = new Set();
const deleting = new Set(); // hidden, waiting for their undo to run out

// What the gallery shows: a state ("" for every state) and part of a file name.
export const shows = (status) => (!filter || status.state === filter)
  && (!search || (status.filename || "").toLowerCase().includes(search.toLowerCase()));

function nameOf(id) {
  const status = statuses.get(id);
  return (status && status.filename) || untitled(status && status.media_type);
}

function newer(known, incoming) {
  // Events and GETs may cross: never let an older status replace a newer one.
  if (!known) return incoming;
  return (incoming.updated_at || "") >= (known.updated_at || "") ? incoming : known;
}

export function card(name, state, mediaType) {
  const frame = el("div", { className: "frame" }, [el("span", { className: "placeholder", "aria-hidden": "true" },
    [kindOf(mediaType)])]);
  if (isVideo(mediaType)) frame.append(videoBadge());
  return el("li", { className: "item", dataset: { state } }, [
    frame,
    el("div", { className: "meta" }, [
      el("p", { className: "name", title: name }, [name]),
      el("p", { className: "facts", dataset: { role: "facts" } }),
      el("p", { className: "state", dataset: { role: "state" } }, [stateWords(state)]),
      el("p", { className: "message", dataset: { role: "message" } }),
      el("p", { className: "actions" }),
    ]),
  ]);
}

function videoBadge() {
  const badge = el("span", { className: "badge", dataset: { role: "video-badge" } }, ["▶"]);
  badge.setAttribute("aria-label", "Video");
  return badge;
}

export function setState(item, state, message) {
  item.dataset.state = state;
  item.querySelector("[data-role=state]").textContent = stateWords(state);
  const text = item.querySelector("[data-role=message]");
  text.textContent = message || "";
  text.title = message || ""; // long messages are cut short on the tile; the whole one on hover
}

export function setActions(item, ...buttons) {
  item.querySelector(".actions").replaceChildren(...buttons);
}

function deleteButton(id) {
  const button = el("button", { type: "button", className: "delete", dataset: { role: "delete" } }, ["Delete"]);
  button.setAttribute("aria-label", `Delete ${nameOf(id)}`);
  button.addEventListener("click", () => deleteItems([id]));
  return button;
}

function picker(id) {
  const box = el("input", { type: "checkbox", dataset: { role: "select" } });
  box.setAttribute("aria-label", `Select ${nameOf(id)}`);
  box.addEventListener("change", () => {
    if (box.checked) selected.add(id);
    else selected.delete(id);
    showSelection();
  });
  return el("label", { className: "pick" }, [box]);
}

function showSelection() {
  for (const id of selected) if (!items.has(id) || deleting.has(id)) selected.delete(id);
  ui.deleteSelected.hidden = selected.size === 0;
  ui.clearSelection.hidden = selected.size === 0;
  ui.deleteSelected.textContent = `Delete ${selected.size} selected`;
  for (const [id, item] of items) {
    item.classList.toggle("selected", selected.has(id));
    item.querySelector("[data-role=select]").checked = selected.has(id);
  }
}

export function showCount() {
  const shown = [...items.keys()].filter((id) => !deleting.has(id)).length;
  ui.count.dataset.count = String(shown);
  ui.count.textContent = nextCursor ? `${shown} items shown, more below` : plural(shown, "item");
  const filtered = Boolean(filter || search); // uploads not yet items stand aside then (app.css)
  const visible = [...ui.gallery.children].some((child) => !child.hidden && (child.dataset.mediaId || !filtered));
  ui.empty.hidden = visible;
  ui.empty.textContent = search || filter ? "Nothing matches." : "Nothing here yet: add a photo above.";
}

function openDetails(id) {
  const status = statuses.get(id);
  if (status) openViewer(id, status, nameOf(id));
}

function facts(status) {
  const when = status.created_at ? new Date(status.created_at).toLocaleDateString([], { month: "short", day: "numeric" })
    : ""; // the time, to the second, in the larger view
  return [kindOf(status.media_type), bytesText(status.bytes), when].filter(Boolean).join(" · ");
}

export function becomeMedia(item, status) {
  const id = status.media_id;
  statuses.set(id, newer(statuses.get(id), status));
  item.dataset.mediaId = id;
  items.set(id, item);
  const frame = item.querySelector(".frame");
  if (!frame.querySelector(".open")) {
    // The tile (the thumbnail, or the type until there is one) opens the larger view and the details.
    const open = el("button", { type: "button", className: "open", title: "Open the larger view and details" },
      [el("span", { className: "placeholder" }, [kindOf(status.media_type)])]);
    open.setAttribute("aria-label", `Open ${nameOf(id)}`);
    open.addEventListener("click", () => openDetails(id));
    frame.replaceChildren(open, picker(id));
    if (isVideo(status.media_type)) frame.append(videoBadge());
  }
  const name = item.querySelector(".name");
  name.textContent = nameOf(id);
  name.title = nameOf(id);
  item.querySelector("[data-role=facts]").textContent = facts(status);
  setActions(item, deleteButton(id));
}

// Newest first, as the server lists: by creation time, then id; uploads not yet accepted on top.
function sortKey(item) {
  const status = statuses.get(item.dataset.mediaId);
  return `${(status && status.created_at) || ""} ${item.dataset.mediaId}`;
}

export function position(item) {
  const key = sortKey(item);
  for (const other of ui.gallery.children) {
    if (other === item || !other.dataset.mediaId) continue;
    if (sortKey(other) < key) return other.before(item);
  }
  ui.gallery.append(item);
}

// Items created within one millisecond are ordered by the server's own clock, which only its
// list shows: once uploads settle, the first page is read and the tiles follow it.
let reorderTimer = 0;
export function reorderSoon() {
  clearTimeout(reorderTimer);
  reorderTimer = setTimeout(async () => {
    try {
      const body = await (await apiOk(`/images?${listQuery(false)}`)).json();
      let anchor = null;
      for (const status of body.items) {
        place(status);
        const item = items.get(status.media_id);
        if (!item) continue;
        if (anchor) anchor.after(item);
        else {
          const first = [...ui.gallery.children].find((child) => child.dataset.mediaId);
          if (first !== item) first.before(item);
        }
        anchor = item;
      }
    } catch { /* the order a reload would show is only a nicety */ }
  }, 300);
}

export function apply(id, incoming) {
  const before = statuses.get(id);
  const status = newer(before, incoming);
  statuses.set(id, status);
  const item = items.get(id);
  if (!item) return;
  setState(item, status.state, status.state === "Error" ? status.message : "");
  item.querySelector("[data-role=facts]").textContent = facts(status);
  if (status.state === "Completed" && !thumbnails.has(id)) showThumbnail(id, status);
  if (before && before.state !== status.state && status.state !== "Processing") {
    announce(`${nameOf(id)}: ${stateWords(status.state)}. ${status.state === "Error" ? status.message : ""}`);
  }
}

// The size a tile draws: the smallest whose short side fills the tile, else the largest.
function tileSize(status) {
  const sizes = Object.entries(status.sizes || {});
  if (!sizes.length) return null;
  const need = TILE_PIXELS * (window.devicePixelRatio || 1);
  const byArea = [...sizes].sort(([, [w1, h1]], [, [w2, h2]]) => w1 * h1 - w2 * h2);
  const fits = byArea.find(([, [width, height]]) => Math.min(width, height) >= need);
  return (fits || byArea[byArea.length - 1])[0];
}

// The item's ThumbHash as a tiny blurred picture, shown until its thumbnail has loaded: a canvas
// (the page's policy allows images only from itself), stretched over the tile as the image is.
function placeholderCanvas(status) {
  const thumbhash = status.placeholder && status.placeholder.thumbhash;
  if (!thumbhash) return null;
  try {
    const { w, h, rgba } = thumbHashToRGBA(Uint8Array.from(atob(thumbhash), (c) => c.charCodeAt(0)));
    const canvas = el("canvas", { className: "blur", dataset: { role: "placeholder" } });
    canvas.width = w;
    canvas.height = h;
    canvas.setAttribute("aria-hidden", "true");
    canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), w, h), 0, 0);
    return canvas;
  } catch {
    return null; // a placeholder that does not decode: the kind's name stays until the thumbnail
  }
}

async function showThumbnail(id, status) {
  thumbnails.set(id, null); // claimed: one fetch per item
  const size = tileSize(status);
  const canvas = placeholderCanvas(status);
  const waiting = items.get(id);
  if (canvas && waiting) waiting.querySelector(".frame .open").replaceChildren(canvas);
  try {
    const query = new URLSearchParams({ encoding: "binary", ...(size ? { size } : {}) });
    const response = await apiOk(`/images/${encodeURIComponent(id)}/thumbnail?${query}`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const item = items.get(id);
    if (!item) return URL.revokeObjectURL(url);
    thumbnails.set(id, url);
    const image = el("img", { alt: `Thumbnail of ${nameOf(id)}`, src: url, dataset: { role: "thumbnail", size } });
    const frame = item.querySelector(".frame");
    frame.classList.toggle("see-through", !OPAQUE_TYPES.has(blob.type));
    frame.querySelector(".open").replaceChildren(image);
  } catch (error) {
    thumbnails.delete(id);
    const item = items.get(id);
    if (item) item.querySelector("[data-role=message]").textContent = `The thumbnail did not load: ${error.message}`;
  }
}

export function drop(id) {
  const item = items.get(id);
  if (item) item.remove();
  items.delete(id);
  statuses.delete(id);
  deleting.delete(id);
  selected.delete(id);
  const url = thumbnails.get(id);
  if (url) URL.revokeObjectURL(url);
  thumbnails.delete(id);
  showSelection();
  showCount();
}

export function dropAll() {
  for (const id of [...items.keys()]) drop(id);
}

async function sendDelete(id) {
  try {
    await apiOk(`/images/${encodeURIComponent(id)}`, { method: "DELETE", keepalive: true });
  } catch (error) {
    if (error.status !== 404) {
      deleting.delete(id);
      const item = items.get(id);
      if (item) {
        item.hidden = false;
        item.querySelector("[data-role=message]").textContent = `Not deleted: ${error.message}`;
      }
      showCount();
      return;
    }
  }
  drop(id);
}

// Hidden at once; the DELETEs go when the undo runs out.
function deleteItems(ids) {
  const chosen = ids.filter((id) => items.has(id) && !deleting.has(id));
  if (!chosen.length) return;
  const focusFrom = items.get(chosen[0]);
  const next = [focusFrom.nextElementSibling, focusFrom.previousElementSibling].find((e) => e && !e.hidden);
  for (const id of chosen) {
    deleting.add(id);
    items.get(id).hidden = true;
  }
  showSelection();
  showCount();
  const text = chosen.length === 1 ? `Deleted ${nameOf(chosen[0])}.` : `Deleted ${chosen.length} items.`;
  announce(text);
  offerUndo(text, {
    onUndo: () => {
      for (const id of chosen) {
        deleting.delete(id);
        const item = items.get(id);
        if (item) item.hidden = false;
      }
      showCount();
      announce(chosen.length === 1 ? `${nameOf(chosen[0])} is back.` : `${chosen.length} items are back.`);
    },
    onCommit: () => chosen.forEach(sendDelete),
  });
  const focusTarget = next && next.querySelector("button");
  (focusTarget || ui.toastUndo).focus();
}

export function place(status) {
  const id = status.media_id;
  if (items.has(id)) return apply(id, status);
  statuses.set(id, status);
  const item = card(nameOf(id), status.state, status.media_type);
  becomeMedia(item, status);
  position(item);
  apply(id, status);
  showCount();
}

function listQuery(withCursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (filter) query.set("state", filter);
  if (search) query.set("filename", search);
  if (withCursor && nextCursor) query.set("cursor", nextCursor);
  return query;
}

export async function loadPage({ reset }) {
  const query = listQuery(!reset);
  ui.more.disabled = true;
  try {
    const body = await (await apiOk(`/images?${query}`)).json();
    if (reset) dropAll();
    for (const status of body.items) place(status);
    nextCursor = body.next;
    ui.more.hidden = !nextCursor;
    showCount();
    showNotice("");
  } catch (error) {
    if (error.status !== 401) showNotice(`Could not load the gallery: ${error.message}`);
  } finally {
    ui.more.disabled = false;
  }
}

// After the event stream was down: what changed meanwhile, without losing the pages shown.
export async function resync() {
  for (const [id, status] of statuses) {
    if (status.state === "Processing") refresh(id);
  }
  try {
    const body = await (await apiOk(`/images?${listQuery(false)}`)).json();
    for (const status of body.items) place(status);
  } catch { /* the stream's own reconnect will try again */ }
}

export async function refresh(id) {
  const response = await api(`/images/${encodeURIComponent(id)}`).catch(() => null);
  if (!response) return;
  if (response.status === 404) return drop(id);
  const body = await response.json().catch(() => null);
  if (body && body.media_id === id && body.state) apply(id, body);
}

export function setUpGallery() {
  ui.more.addEventListener("click", () => loadPage({ reset: false }));
  ui.filter.addEventListener("change", () => {
    filter = ui.filter.value;
    ui.gallery.dataset.filtered = filter || search ? "yes" : "";
    loadPage({ reset: true });
  });
  let typing = 0;
  ui.search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      search = ui.search.value.trim();
      ui.gallery.dataset.filtered = filter || search ? "yes" : "";
      loadPage({ reset: true });
    }, 250);
  });
  ui.deleteSelected.addEventListener("click", () => deleteItems([...selected]));
  ui.clearSelection.addEventListener("click", () => {
    selected.clear();
    showSelection();
  });
  showSelection();
}
