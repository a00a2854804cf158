// The page's entry. It loads modules/main.js (which imports the other modules) from the URL the
// page names with main.js's fingerprint, itself covering every module main.js imports: this page
// and its modules are always of one version (server/page.py).
import(document.querySelector("script[data-main]").dataset.main);
