// Thumbnailify's page: upload with progress, live states from GET /events, the gallery.
// Native ES modules, no build step: this one wires the others. Hooks for automation (docs/web-page.md,
// "Stable hooks"): each item is an element with data-media-id and data-state, its thumbnail
// <img data-role="thumbnail">, its delete button data-role="delete".
import { needKey, onKeyGiven, onKeyNeeded, setUpKeyForm } from "./api.js";
import { ui } from "./dom.js";
import { start, stop } from "./events.js";
import { dropAll, setUpGallery } from "./gallery.js";
import { setUpUndo } from "./undo.js";
import { setUpUploads } from "./uploads.js";
import { setUpViewer } from "./viewer.js";

onKeyNeeded(stop); // the event stream starts again once there is a key
onKeyGiven(start);
setUpKeyForm();
ui.forgetKey.addEventListener("click", () => {
  dropAll();
  needKey();
  ui.keyError.textContent = "";
});
setUpGallery();
setUpUndo();
setUpViewer();
setUpUploads();
start();
