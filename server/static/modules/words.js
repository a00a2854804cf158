// What a person reads: sizes in KB/MB, kinds of media, states, and the words for what went wrong.

const KINDS = {
  "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WebP",
  "image/heic": "HEIC", "image/heif": "HEIF", "image/avif": "AVIF",
  "video/mp4": "MP4", "video/quicktime": "MOV", "video/webm": "WebM",
};

// The words on a card for each data-state (the attribute keeps the API's names, for automation).
const STATE_WORDS = {
  Uploading: "Uploading", Processing: "Making the thumbnail…", Completed: "Ready",
  Error: "Could not be made", Refused: "Refused", Failed: "Not sent",
};

export const UNREACHABLE = "The server could not be reached.";

export const isVideo = (mediaType) => (mediaType || "").startsWith("video/");

export function kindOf(mediaType) {
  return KINDS[mediaType] || "File";
}

// A title for an item whose upload named no file (curl, scripts): "JPEG photo", "MP4 video".
export function untitled(mediaType) {
  return `${kindOf(mediaType)} ${isVideo(mediaType) ? "video" : "photo"}`;
}

export function stateWords(state) {
  return STATE_WORDS[state] || state;
}

export function bytesText(count) {
  if (typeof count !== "number" || !Number.isFinite(count)) return "";
  if (count < 1024) return `${count} bytes`;
  const units = ["KB", "MB", "GB"];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${oneDecimal(value)} ${units[unit]}`;
}

// As Python's format(value, ".1f") writes it (thumbnailify/units.py), so the page says the size the
// server's messages and the CLI say: toFixed rounds an exact tie up, Python to even, and of the ties
// a double holds exactly (x.25, x.75) only x.25 comes out differently.
function oneDecimal(value) {
  return (value % 1 === 0.25 ? value - 0.05 : value).toFixed(1).replace(/\.0$/, "");
}

export const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
