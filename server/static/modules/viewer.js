// The larger view of an item: its largest thumbnail, what a person wants to know about it, copy
// link and download, and the internals (message, id, SHA-256, history) behind "Details".
import { apiOk } from "./api.js";
import { el, ui } from "./dom.js";
import { bytesText, kindOf, stateWords } from "./words.js";

let shown = null; // the blob: URL the viewer shows, revoked when it closes

function largestSize(status) {
  const sizes = Object.entries(status.sizes || {});
  if (!sizes.length) return null;
  const area = ([, [width, height]]) => width * height;
  return sizes.reduce((best, size) => (area(size) > area(best) ? size : best));
}

function pair(term, value) {
  return value ? [el("dt", {}, [term]), el("dd", {}, [String(value)])] : [];
}

function dimensions(status, largest) {
  const meta = status.metadata || {};
  if (meta.width && meta.height) return `${meta.width} × ${meta.height}`;
  return largest ? `${largest[1][0]} × ${largest[1][1]} (largest thumbnail)` : "";
}

function extension(mediaType) {
  return { "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/avif": "avif" }[mediaType] || "bin";
}

function stem(name) {
  return name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : name;
}

function reset() {
  if (shown) URL.revokeObjectURL(shown);
  shown = null;
  ui.viewerImage.removeAttribute("src");
  ui.viewerDownload.removeAttribute("href");
  ui.viewerDownload.hidden = true;
}

export async function openViewer(id, status, name) {
  reset();
  const largest = status.state === "Completed" ? largestSize(status) : null;
  const link = largest ? new URL(`/images/${encodeURIComponent(id)}/thumbnail?encoding=binary&size=${
    encodeURIComponent(largest[0])}`, location.href).href : "";
  ui.viewerTitle.textContent = name;
  ui.viewerImage.alt = `Thumbnail of ${name}`;
  ui.viewerImage.hidden = !largest;
  ui.viewerFacts.replaceChildren(
    ...pair("State", stateWords(status.state)), ...pair("Type", kindOf(status.media_type)),
    ...pair("File size", bytesText(status.bytes)), ...pair("Dimensions", dimensions(status, largest)),
    ...pair("Added", status.created_at && new Date(status.created_at).toLocaleString()));
  const sizes = Object.entries(status.sizes || {}).map(([sizeName, [w, h]]) => `${sizeName} ${w}×${h}`).join(", ");
  ui.viewerDetails.replaceChildren(
    ...pair("Message", status.message), ...pair("Thumbnail sizes", sizes), ...pair("Media type", status.media_type),
    ...pair("Media ID", id), ...pair("SHA-256", status.sha256));
  ui.viewerHistory.replaceChildren(...(status.history || []).map((entry) =>
    el("li", {}, [`${new Date(entry.at).toLocaleTimeString()} ${entry.service}: ${entry.state} — ${entry.message}`])));
  ui.viewerLink.value = link;
  ui.viewerLink.hidden = !link;
  ui.viewerCopy.hidden = !link;
  ui.viewerCopy.textContent = "Copy link";
  ui.viewer.showModal();
  if (!largest) return;
  try {
    const response = await apiOk(link);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    if (!ui.viewer.open) return URL.revokeObjectURL(url);
    shown = url;
    ui.viewerImage.src = url;
    ui.viewerDownload.href = url;
    ui.viewerDownload.download = `${stem(name)}-${largest[0]}.${extension(blob.type)}`;
    ui.viewerDownload.hidden = false;
  } catch (error) {
    ui.viewerFacts.append(...pair("Thumbnail", `did not load: ${error.message}`));
  }
}

export function setUpViewer() {
  ui.viewer.addEventListener("close", reset);
  ui.viewerCopy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(ui.viewerLink.value);
      ui.viewerCopy.textContent = "Link copied";
    } catch {
      // No clipboard (an http:// page on another host): the link is selected for Ctrl+C.
      ui.viewerLink.focus();
      ui.viewerLink.select();
      ui.viewerCopy.textContent = "Press Ctrl+C to copy";
    }
  });
}
