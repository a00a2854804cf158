// The page's elements and small helpers to build and announce things.

const $ = (selector) => document.querySelector(selector);

export const ui = {
  connection: $("#connection"), notice: $("#notice"), forgetKey: $("#forget-key"),
  keyForm: $("#key-form"), keyInput: $("#api-key"), keyError: $("#key-error"),
  dropZone: $("#drop-zone"), files: $("#files"), filter: $("#state-filter"), search: $("#name-filter"),
  count: $("#count"), deleteSelected: $("#delete-selected"), clearSelection: $("#clear-selection"),
  gallery: $("#gallery"), empty: $("#empty"), more: $("#load-more"), announce: $("#announce"),
  toast: $("#toast"), toastText: $("#toast-text"), toastUndo: $("#toast-undo"),
  viewer: $("#viewer"), viewerTitle: $("#viewer-title"), viewerImage: $("#viewer-image"),
  viewerFacts: $("#viewer-facts"), viewerDetails: $("#viewer-details"), viewerHistory: $("#viewer-history"),
  viewerLink: $("#viewer-link"), viewerCopy: $("#viewer-copy"), viewerDownload: $("#viewer-download"),
};

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node && !name.startsWith("aria")) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function announce(text) {
  ui.announce.textContent = text;
}

export function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

export function setConnection(state, text) {
  ui.connection.dataset.connection = state;
  ui.connection.textContent = text;
}
