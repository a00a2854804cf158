// The larger view of an item: its largest thumbnail, its details and its history.
import { apiOk } from "./api.js";
import { el, ui } from "./dom.js";

function largestSize(status) {
  const sizes = Object.entries(status.sizes || {});
  if (sizes.length < 2) return null;
  const area = ([, [width, height]]) => width * height;
  return sizes.reduce((best, size) => (area(size) > area(best) ? size : best))[0];
}

function detail(term, value) {
  return value ? [el("dt", {}, [term]), el("dd", {}, [String(value)])] : [];
}

// thumbnail: the blob: URL of the item's default thumbnail, if it has been shown.
export async function openViewer(id, status, name, thumbnail) {
  const size = largestSize(status);
  ui.viewerTitle.textContent = name;
  ui.viewerImage.alt = `${size ? "Larger thumbnail" : "Thumbnail"} of ${name}`;
  ui.viewerImage.src = thumbnail || "";
  ui.viewerImage.hidden = !thumbnail;
  const sizes = Object.entries(status.sizes || {}).map(([sizeName, [w, h]]) => `${sizeName} ${w}×${h}`).join(", ");
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
