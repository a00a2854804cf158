// Calls to the API with the key (asked for at the first 401, kept for the tab), and their errors.
import { setConnection, ui } from "./dom.js";

const KEY_STORE = "thumbnailify.apiKey";

let apiKey = sessionStorage.getItem(KEY_STORE) || "";
let keyWaiters = [];
const keyNeededListeners = [];
const keyGivenListeners = [];

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const hasKey = () => Boolean(apiKey);
export const authHeaders = () => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

// What to do when the key is found missing or wrong (stop the event stream), and once one is given.
export const onKeyNeeded = (listener) => keyNeededListeners.push(listener);
export const onKeyGiven = (listener) => keyGivenListeners.push(listener);

export async function messageOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === "string") return body.message;
  } catch { /* not JSON: the text itself, below */ }
  return text.trim().slice(0, 200) || `${response.status} ${response.statusText}`;
}

export function needKey() {
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
  keyNeededListeners.forEach((listener) => listener());
}

export function keyReady() {
  return apiKey ? Promise.resolve() : new Promise((resolve) => keyWaiters.push(resolve));
}

export function setUpKeyForm() {
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
    keyGivenListeners.forEach((listener) => listener());
  });
}

export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    needKey();
    throw new ApiError(401, "This server needs an API key.");
  }
  return response;
}

export async function apiOk(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw new ApiError(response.status, await messageOf(response));
  return response;
}
