"""The web page's uploads through tus-js-client (vendored from npm, served by the app) in a real
headless Chromium: a connection cut mid-upload and a reload of the page mid-upload both resume
from the server's offset and end Completed with the original's bytes.

The page's requests are observed (not changed) by wrapping XMLHttpRequest's open and
setRequestHeader: each request's method, URL and Upload-Offset is noted, so the test sees the
resume start where the server was instead of from zero.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.corpus import write_noisy_jpeg
from tests.harness import Service, wait_until
from tests.proxy import TcpProxy
from tests.system.test_page import browser, card, choose, live, page_errors, wait_for

__all__ = ["browser"]  # the Chromium fixture, shared with the page's other tests

pytestmark = pytest.mark.timeout(240)

CHUNK_BYTES = 8 * 1024 * 1024  # uploads.js's PATCH size
WATCH_REQUESTS = """
window.seen = [];
const open = XMLHttpRequest.prototype.open, setHeader = XMLHttpRequest.prototype.setRequestHeader;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  this.noted = { method, url: String(url), offset: null };
  window.seen.push(this.noted);
  return open.call(this, method, url, ...rest);
};
XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
  if (name.toLowerCase() === "upload-offset") this.noted.offset = Number(value);
  return setHeader.call(this, name, value);
};
"""


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JPEG as a good phone takes, more than one PATCH long (noise keeps it large)."""
    path = write_noisy_jpeg(tmp_path_factory.mktemp("photo") / "IMG_2041.jpg", (5000, 4000), sigma=32, quality=92)
    assert path.stat().st_size > CHUNK_BYTES * 1.3
    return path


def tus_requests(driver: WebDriver) -> list[dict[str, object]]:
    seen = driver.execute_script("return window.seen")
    return [request for request in seen if "/uploads/" in str(request["url"])]


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url + "/")
    wait_for(driver, "a live event stream", live)
    driver.execute_script(WATCH_REQUESTS)


def completed_media_id(driver: WebDriver, filename: str) -> str:
    def done(d: WebDriver) -> str | None:
        element = card(d, filename)
        state = element.get_attribute("data-state")
        assert state not in ("Refused", "Failed"), element.get_attribute("outerHTML")
        return element.get_attribute("data-media-id") if state == "Completed" else None
    return str(wait_for(driver, f"{filename} Completed", done))


def assert_as_sent(service: Service, upload_url: str, media_id: str, path: Path) -> None:
    """The upload that had bytes before the fault is the one that made the item, with the bytes sent."""
    upload = requests.get(upload_url, timeout=10).json()
    assert (upload["media_id"], upload["offset"]) == (media_id, path.stat().st_size), upload
    record = service.record(media_id)
    assert record is not None and record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_page_upload_cut_mid_patch_resumes_from_the_servers_offset(browser: WebDriver, tmp_path: Path,
                                                                     big_photo: Path) -> None:
    size = big_photo.stat().st_size
    with Service("embedded", tmp_path / "service", workers=1, video_workers=0) as service, \
            TcpProxy(service.port) as proxy:
        open_page(browser, f"http://127.0.0.1:{proxy.port}")
        proxy.drop_after(CHUNK_BYTES // 2)  # half of the first PATCH, then the link dies
        choose(browser, [big_photo])
        media_id = completed_media_id(browser, big_photo.name)
        sent = tus_requests(browser)
        creations = [r for r in sent if r["method"] == "POST"]
        patches = [r for r in sent if r["method"] == "PATCH"]
        assert len(creations) == 1, sent  # one upload, never begun again
        upload_url = str(patches[0]["url"])
        assert {r["url"] for r in sent if r["method"] != "POST"} == {upload_url}, sent
        assert "HEAD" in [r["method"] for r in sent], sent  # asked where to go on from
        resumed_at = [int(r["offset"]) for r in patches if r["offset"]]  # type: ignore[call-overload]
        assert patches[0]["offset"] == 0 and resumed_at, sent
        # The first PATCH after the cut goes on from what the server kept of the cut one.
        assert 0 < resumed_at[0] <= CHUNK_BYTES // 2 and resumed_at[0] % CHUNK_BYTES != 0, sent
        assert_as_sent(service, service.url + "/uploads/" + upload_url.rpartition("/")[2], media_id, big_photo)
        assert size > resumed_at[0]
        assert browser.execute_script("return Object.keys(localStorage).filter((k) => k.startsWith('tus::'))") == []
        assert page_errors(browser) == []


def test_page_reloaded_mid_upload_resumes_the_same_file_chosen_again(browser: WebDriver, tmp_path: Path,
                                                                      big_photo: Path) -> None:
    with Service("embedded", tmp_path / "service", workers=1, video_workers=0) as service, \
            TcpProxy(service.port) as proxy:
        page = f"http://127.0.0.1:{proxy.port}"
        open_page(browser, page)
        proxy.stall(30, b"HTTP/1.1 204")  # the first PATCH's answer held: the page is reloaded meanwhile
        choose(browser, [big_photo])
        wait_until(lambda: any(r["method"] == "PATCH" for r in tus_requests(browser)), 30, "a PATCH sent")
        upload_url = str(next(r["url"] for r in tus_requests(browser) if r["method"] == "PATCH"))
        direct = service.url + "/uploads/" + upload_url.rpartition("/")[2]

        def kept() -> int:
            return int(requests.head(direct, headers={"Tus-Resumable": "1.0.0"}, timeout=10).headers["Upload-Offset"])
        wait_until(lambda: kept() == CHUNK_BYTES, 30, "the first PATCH stored")
        stored = browser.execute_script("return Object.keys(localStorage).filter((k) => k.startsWith('tus::'))")
        assert len(stored) == 1, stored  # tus-js-client noted the upload under the file's fingerprint

        open_page(browser, page)  # the reload: the held PATCH is abandoned with the old page
        wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, "[data-filename]"), 10, "an empty page")
        choose(browser, [big_photo])
        media_id = completed_media_id(browser, big_photo.name)
        sent = tus_requests(browser)
        assert [r["method"] for r in sent if r["method"] in ("POST", "HEAD")] == ["HEAD"], sent
        assert next(r["offset"] for r in sent if r["method"] == "PATCH") == CHUNK_BYTES, sent
        assert {r["url"] for r in sent} == {upload_url}, sent
        assert_as_sent(service, direct, media_id, big_photo)
        assert page_errors(browser) == []
