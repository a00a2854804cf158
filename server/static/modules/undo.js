// "Deleted … Undo": an action that only happens once its undo has not been asked for in time.
import { ui } from "./dom.js";

const UNDO_MS = 6000;

let pending = null; // { onCommit, timer }

function finish() {
  const action = pending;
  pending = null;
  ui.toast.hidden = true;
  if (action) {
    clearTimeout(action.timer);
    action.onCommit();
  }
}

// Shows text with an Undo button; onCommit runs after UNDO_MS (or at once when another action
// is offered, or the page goes away), onUndo instead when Undo is pressed.
export function offerUndo(text, { onUndo, onCommit }) {
  if (pending) finish();
  ui.toastText.textContent = text;
  ui.toast.hidden = false;
  pending = { onCommit, onUndo, timer: setTimeout(finish, UNDO_MS) };
}

export function setUpUndo() {
  ui.toastUndo.addEventListener("click", () => {
    const action = pending;
    pending = null;
    ui.toast.hidden = true;
    if (action) {
      clearTimeout(action.timer);
      action.onUndo();
    }
  });
  // Leaving the page does what was asked: the delete is sent (keepalive lets it outlive the page).
  addEventListener("pagehide", finish);
}
