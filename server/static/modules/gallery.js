// The gallery: one card per item, its state and thumbnail, pages of the list, the filter, delete.
import { api, apiOk } from "./api.js";
import { announce, el, showNotice, ui } from "./dom.js";
import { openViewer } from "./viewer.js";

const NAMES_STORE = "thumbnailify.names";
const PAGE_SIZE = 24;
const MAX_NAMES = 1000;

let filter = "";
let nextCursor = null;
export const items = new Map(); // media_id -> its <li>
const statuses = new Map(); // media_id -> the newest status body seen
const thumbnails = new Map(); // media_id -> blob: URL of its thumbnail
const names = new Map(Object.entries(JSON.parse(sessionStorage.getItem(NAMES_STORE) || "{}")));

// The state the gallery shows ("" for every state).
export const shownState = () => filter;

export function rememberName(id, name) {
  names.set(id, name);
  while (names.size > MAX_NAMES) names.delete(names.keys().next().value);
  sessionStorage.setItem(NAMES_STORE, JSON.stringify(Object.fromEntries(names)));
}

export function typeLabel(mediaType) {
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

export function card(name, state) {
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

export function setState(item, state, message) {
  item.dataset.state = state;
  item.querySelector("[data-role=state]").textContent = state;
  const text = item.querySelector("[data-role=message]");
  text.textContent = message || "";
  text.title = message || ""; // long messages are cut short on the card; the whole one on hover and in the details
}

export function setActions(item, ...buttons) {
  item.querySelector(".actions").replaceChildren(...buttons);
}

function deleteButton(id) {
  const button = el("button", { type: "button", className: "delete", dataset: { role: "delete" } }, ["Delete"]);
  button.setAttribute("aria-label", `Delete ${nameOf(id)}`);
  button.addEventListener("click", () => remove(id, button));
  return button;
}

function openDetails(id) {
  const status = statuses.get(id);
  if (status) openViewer(id, status, nameOf(id), thumbnails.get(id));
}

export function becomeMedia(item, status) {
  const id = status.media_id;
  item.dataset.mediaId = id;
  items.set(id, item);
  const frame = item.querySelector(".frame");
  if (!frame.querySelector(".open")) {
    // The thumbnail (or, until there is one, the type) opens the larger view and the details.
    const open = el("button", { type: "button", className: "open", title: "Open the larger view and details" },
      [el("span", { className: "placeholder" }, [typeLabel(status.media_type)])]);
    open.setAttribute("aria-label", `Open ${nameOf(id)}`);
    open.addEventListener("click", () => openDetails(id));
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

export function apply(id, incoming) {
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

export function drop(id) {
  const item = items.get(id);
  if (item) item.remove();
  items.delete(id);
  statuses.delete(id);
  const url = thumbnails.get(id);
  if (url) URL.revokeObjectURL(url);
  thumbnails.delete(id);
  ui.empty.hidden = ui.gallery.children.length > 0;
}

export function dropAll() {
  for (const id of [...items.keys()]) drop(id);
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

export function place(status, where) {
  const id = status.media_id;
  if (items.has(id)) return apply(id, status);
  statuses.set(id, status);
  const item = itemFor(status);
  if (where === "top") ui.gallery.prepend(item);
  else ui.gallery.append(item);
  ui.empty.hidden = true;
  apply(id, status);
}

export async function loadPage({ reset }) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (filter) query.set("state", filter);
  if (!reset && nextCursor) query.set("cursor", nextCursor);
  ui.more.disabled = true;
  try {
    const body = await (await apiOk(`/images?${query}`)).json();
    if (reset) dropAll();
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
export async function resync() {
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
    loadPage({ reset: true });
  });
}
