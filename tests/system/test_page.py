"""The web page (GET /) in a real headless Chromium against the real service.

Debian's chromium and chromium-driver (scripts/install-system.sh test) driven by selenium; nothing
downloads a browser. A missing browser fails these tests. The screenshot of the first run is kept
as an artifact and its path printed.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests import videos
from tests.conftest import PHOTOS
from tests.harness import ROOT, Service, run_sizes
from thumbnailify.server.page import CONTENT_SECURITY_POLICY, Site
from thumbnailify.units import size_text

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "var" / "test-artifacts" / "page.png"
PHONE_SCREENSHOT = SCREENSHOT.with_name("page-phone.png")
PHONE_VIEWER_SCREENSHOT = SCREENSHOT.with_name("page-phone-viewer.png")
DESKTOP = (1280, 1000)  # the window's size, in CSS pixels
PHONE = (390, 844)  # a phone's screen
WAIT = 30  # seconds for anything the page should show; far above what it takes
GOOD = ("astronaut.jpg", "camera.png", "coffee.jpg")
NOT_AN_IMAGE = b"these are words, not a JPEG\n"
PAGE_SIZE = 24  # items the page lists at a time (app.js)
SIZES = run_sizes()  # as `make run` has them: a size for tiles and the larger view


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.is_file():
            pytest.fail(f"{binary} is missing: `bash scripts/install-system.sh test` installs chromium and "
                        "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                     "--window-size={},{}".format(*DESKTOP)):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path given: selenium's own driver manager never runs (it would download).
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait_for(driver: WebDriver, what: str, condition):
    """condition(driver)'s first truthy value; the page's state in the failure message."""
    def attempt(d: WebDriver):
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(attempt)
    except WebDriverException as exc:
        gallery = driver.find_element(By.ID, "gallery").get_attribute("outerHTML")
        raise AssertionError(f"page never showed {what}:\n{gallery[:4000]}") from exc


def media_items(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#gallery [data-media-id]")


def item(driver: WebDriver, media_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-media-id="{media_id}"]')


def card(driver: WebDriver, filename: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-filename="{filename}"]')


def thumbnail_shown(element: WebElement) -> tuple[int, int] | None:
    """The natural size of the item's thumbnail once it has loaded."""
    images = element.find_elements(By.CSS_SELECTOR, 'img[data-role="thumbnail"]')
    if not images:
        return None
    width = int(images[0].get_property("naturalWidth") or 0)
    return (width, int(images[0].get_property("naturalHeight"))) if width else None


def live(driver: WebDriver) -> bool:
    return driver.find_element(By.ID, "connection").get_attribute("data-connection") == "live"


def page_errors(driver: WebDriver) -> list[str]:
    """What the browser logged as errors (a CSP violation, a script error), beside the refused
    requests the page expects and handles (a 415, a 401, the server away during its restart)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]


def choose(driver: WebDriver, paths: list[Path]) -> None:
    driver.find_element(By.ID, "files").send_keys("\n".join(str(path) for path in paths))


def tiny_png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (shade, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def api_ids(service: Service) -> list[str]:
    return [body["media_id"] for body in service.get("/images").json()["items"]]


def assert_page_files_served_and_cached(service: Service) -> None:
    """Without a key; each file under the fingerprint the page names is cached for good, the page
    itself revalidated; an ETag answers 304; an unknown name is a JSON 404."""
    page = service.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    assert service.get("/", headers={"If-None-Match": page.headers["ETag"]}).status_code == 304
    named = dict(re.findall(r'"/static/([\w.]+)\?v=(\w+)"', page.text))
    assert set(named) == {"app.js", "app.css", "icon.svg"}
    for name, version in named.items():
        current = service.get(f"/static/{name}", params={"v": version})
        assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert current.headers["ETag"] == f'"{version}"'
        assert current.content == (ROOT / "server" / "static" / name).read_bytes()
        assert service.get(f"/static/{name}").headers["Cache-Control"] == "no-cache"
        assert service.get(f"/static/{name}", headers={"If-None-Match": f'"{version}"'}).status_code == 304
    assert service.get("/static/app.js").headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert service.get("/static/icon.svg").headers["Content-Type"] == "image/svg+xml"
    missing = service.get("/static/index.html")
    assert (missing.status_code, missing.json()) == (404, {"message": "no such file"})


def shown_ids(driver: WebDriver) -> list[str]:
    """The items a person sees, in order (an item waiting for its undo to run out is hidden)."""
    return [e.get_attribute("data-media-id") for e in media_items(driver) if e.is_displayed()]


def role(element: WebElement, name: str) -> WebElement:
    return element.find_element(By.CSS_SELECTOR, f'[data-role="{name}"]')


def count(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "count").get_attribute("data-count") or -1)


def assert_tiles_square_and_filled(driver: WebDriver, media_ids: list[str]) -> None:
    for media_id in media_ids:
        frame = item(driver, media_id).find_element(By.CSS_SELECTOR, ".frame")
        image = frame.find_element(By.CSS_SELECTOR, 'img[data-role="thumbnail"]')
        assert abs(frame.size["width"] - frame.size["height"]) <= 1, frame.size
        assert image.value_of_css_property("object-fit") == "cover"
        assert image.size == frame.size  # the whole tile, no frame around a small picture


@pytest.mark.long
def test_page_uploads_shows_live_states_deletes_and_reconnects(browser: WebDriver, tmp_path: Path, capsys) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for name in (*GOOD, "chelsea.png", "rocket_portrait.jpg"):
        shutil.copy(PHOTOS / name, files / name)
    (files / "broken.jpg").write_bytes(NOT_AN_IMAGE)
    (files / "notes.txt").write_text("a shopping list, not a photo\n")
    (files / "cut.jpg").write_bytes((PHOTOS / "coffee.jpg").read_bytes()[:3000])  # a JPEG that ends early
    (files / "clip.mp4").write_bytes(videos.mp4([videos.flat((40, 160, 90))] * 3))

    with Service("embedded", tmp_path / "service", video_workers=1, THUMBNAILIFY_THUMBNAIL_SIZES=SIZES) as service:
        page = service.get("/")
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        refusal = service.post(NOT_AN_IMAGE, "image/jpeg", raw=True, params={"encoding": "binary"})
        assert refusal.status_code == 415

        browser.get(service.url + "/")
        wait_for(browser, "a live event stream", live)
        wait_for(browser, "the empty gallery", lambda d: d.find_element(By.ID, "empty").is_displayed())
        choose(browser, [files / name for name in (*GOOD, "broken.jpg", "notes.txt", "cut.jpg", "clip.mp4")])

        # Each photo: its own tile, then Completed with the server's thumbnail, the size that fills it.
        def completed(d: WebDriver) -> dict[str, str] | None:
            done = {}
            for name in (*GOOD, "clip.mp4"):
                element = card(d, name)
                if element.get_attribute("data-state") != "Completed" or not thumbnail_shown(element):
                    return None
                done[name] = element.get_attribute("data-media-id")
            return done
        uploaded = wait_for(browser, "every photo Completed with its thumbnail", completed)
        for name, media_id in uploaded.items():
            tile = card(browser, name)
            data = service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary", "size": "large"}).content
            assert thumbnail_shown(tile) == Image.open(io.BytesIO(data)).size, name
            assert role(tile, "thumbnail").get_attribute("data-size") == "large"
            assert tile.find_element(By.CSS_SELECTOR, ".name").text == name  # the server keeps the name
        assert_tiles_square_and_filled(browser, list(uploaded.values()))
        # A JPEG on no checkerboard; the video with its play badge, the photos without.
        jpeg_frame = item(browser, uploaded["coffee.jpg"]).find_element(By.CSS_SELECTOR, ".frame")
        assert jpeg_frame.value_of_css_property("background-image") == "none"
        assert role(item(browser, uploaded["clip.mp4"]), "video-badge").is_displayed()
        assert not item(browser, uploaded["coffee.jpg"]).find_elements(By.CSS_SELECTOR, '[data-role="video-badge"]')
        # Human words: the kind and size of the file, no server internals on the tile.
        coffee = item(browser, uploaded["coffee.jpg"])
        coffee_size = size_text((files / "coffee.jpg").stat().st_size)  # as the CLI and the server say sizes
        assert coffee_size.endswith(" KB") and role(coffee, "facts").text.startswith(f"JPEG · {coffee_size} · ")
        assert role(coffee, "state").text == "Ready" and role(coffee, "message").text == ""

        # The refused file shows the server's own message; the broken JPEG its Error.
        broken = wait_for(browser, "broken.jpg refused", lambda d: card(d, "broken.jpg").get_attribute(
            "data-state") == "Refused" and card(d, "broken.jpg"))
        assert role(broken, "message").text == refusal.json()["message"]
        assert broken.get_attribute("data-media-id") is None
        assert not broken.find_elements(By.CSS_SELECTOR, '[data-role="retry"]')  # sending again changes nothing
        # A file of another kind: refused by the server before any of it is sent, in the same words.
        notes = wait_for(browser, "notes.txt refused", lambda d: card(d, "notes.txt").get_attribute(
            "data-state") == "Refused" and card(d, "notes.txt"))
        assert role(notes, "state").text == "Refused"
        assert role(notes, "message").text.startswith("'text/plain' isn't a photo or video this service takes; ")
        assert role(notes, "dismiss").is_displayed()
        cut = wait_for(browser, "cut.jpg in Error", lambda d: card(d, "cut.jpg").get_attribute(
            "data-state") == "Error" and card(d, "cut.jpg"))
        cut_id = cut.get_attribute("data-media-id")
        assert role(cut, "message").text == service.wait(cut_id)["message"]
        assert sorted(api_ids(service)) == sorted([*uploaded.values(), cut_id])
        # The server's order already, not the order the files were chosen or answered in.
        wait_for(browser, "the server's order", lambda d: shown_ids(d) == api_ids(service))
        assert count(browser) == 5 and browser.find_element(By.ID, "count").text == "5 items"
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))  # every kind of tile at once (docs/page.png is this one)

        # "Could not be made" lists what the worker failed, never what the server refused.
        Select(browser.find_element(By.ID, "state-filter")).select_by_value("Error")
        wait_for(browser, "only the Error item", lambda d: shown_ids(d) == [cut_id])
        assert not [e for e in browser.find_elements(By.CSS_SELECTOR, '[data-state="Refused"]') if e.is_displayed()]
        assert browser.find_element(By.ID, "count").text == "1 item"
        Select(browser.find_element(By.ID, "state-filter")).select_by_value("")
        wait_for(browser, "everything again", lambda d: len(shown_ids(d)) == 5 and all(
            e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, '[data-state="Refused"]')))

        # A send that found no server: "Not sent" with Retry, which works once the server is back.
        service.stop()
        wait_for(browser, "the page noticing the server gone", lambda d: not live(d))
        choose(browser, [files / "chelsea.png"])
        wait_for(browser, "the page saying it retries", lambda d: role(card(d, "chelsea.png"), "message").text
                 .startswith("The server could not be reached — retrying in "))
        lost = wait_for(browser, "chelsea.png Failed", lambda d: card(d, "chelsea.png").get_attribute(
            "data-state") == "Failed" and card(d, "chelsea.png"))
        assert role(lost, "message").text == "The server could not be reached."
        assert role(lost, "state").text == "Not sent"
        service.start()
        wait_for(browser, "the page reconnected", live)
        role(lost, "retry").click()
        wait_for(browser, "chelsea.png Completed after Retry", lambda d: card(d, "chelsea.png").get_attribute(
            "data-state") == "Completed" and thumbnail_shown(card(d, "chelsea.png")))
        uploaded["chelsea.png"] = card(browser, "chelsea.png").get_attribute("data-media-id")

        # Delete: hidden at once, back with Undo, gone from the server only once the undo ran out.
        kept = uploaded["camera.png"]
        role(item(browser, kept), "delete").click()
        wait_for(browser, "the item hidden", lambda d: kept not in shown_ids(d))
        assert count(browser) == 5
        browser.find_element(By.ID, "toast-undo").click()
        wait_for(browser, "the item back", lambda d: kept in shown_ids(d))
        time.sleep(7)  # longer than the undo lasts
        assert service.get(f"/images/{kept}").status_code == 200
        assert count(browser) == 6
        gone = uploaded.pop("camera.png")
        role(item(browser, gone), "delete").click()
        wait_for(browser, "the deleted item gone", lambda d: not d.find_elements(
            By.CSS_SELECTOR, f'[data-media-id="{gone}"]'))
        assert service.get(f"/images/{gone}").status_code == 404

        # Several at once: select, "Delete 2 selected", gone from page and server.
        several = [uploaded.pop("astronaut.jpg"), cut_id]
        for media_id in several:
            role(item(browser, media_id), "select").click()
        delete_selected = browser.find_element(By.ID, "delete-selected")
        assert delete_selected.text == "Delete 2 selected"
        delete_selected.click()
        wait_for(browser, "the selected items gone", lambda d: not any(
            d.find_elements(By.CSS_SELECTOR, f'[data-media-id="{media_id}"]') for media_id in several))
        assert [service.get(f"/images/{media_id}").status_code for media_id in several] == [404, 404]
        wait_for(browser, "the count", lambda d: count(d) == 3)

        # An upload made elsewhere shows up live, on top.
        later = service.upload((PHOTOS / "rocket_portrait.jpg").read_bytes(), "image/jpeg")
        wait_for(browser, "an upload made elsewhere, live", lambda d: item(d, later).get_attribute(
            "data-state") == "Completed" and thumbnail_shown(item(d, later)))
        assert shown_ids(browser)[0] == later
        assert item(browser, later).find_element(By.CSS_SELECTOR, ".name").text == "JPEG photo"  # curl named none

        # Reload: the server's order (newest first), the names, the deleted ones absent.
        browser.refresh()
        wait_for(browser, "the gallery after a reload", lambda d: len(media_items(d)) == 4)
        assert shown_ids(browser) == api_ids(service)
        assert item(browser, uploaded["coffee.jpg"]).find_element(By.CSS_SELECTOR, ".name").text == "coffee.jpg"
        wait_for(browser, "thumbnails after the reload",
                 lambda d: all(thumbnail_shown(item(d, media_id)) for media_id in (*uploaded.values(), later)))

        browser.set_window_size(*PHONE)  # a phone: two tiles a row, nothing wider than the screen
        tiles = [e for e in media_items(browser) if e.is_displayed()]
        assert tiles[0].location["y"] == tiles[1].location["y"] != tiles[2].location["y"]
        assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
        assert_tiles_square_and_filled(browser, list(uploaded.values()))
        for selector in ("#name-filter", "#state-filter", "#count", 'label[for="files"]'):  # "Choose files…"
            element = browser.find_element(By.CSS_SELECTOR, selector)
            assert element.is_displayed() and element.rect["x"] + element.rect["width"] <= PHONE[0], selector
        assert all(role(item(browser, media_id), "delete").is_displayed() for media_id in uploaded.values())
        browser.save_screenshot(str(PHONE_SCREENSHOT))
        # The larger view on a phone: inside the screen, the picture and its buttons in reach.
        item(browser, uploaded["coffee.jpg"]).find_element(By.CSS_SELECTOR, "button.open").click()
        wait_for(browser, "the larger view's thumbnail", lambda d: d.find_element(By.ID, "viewer-image").get_property(
            "naturalWidth"))
        for part in ("viewer", "viewer-image", "viewer-download", "viewer-copy"):
            rect = browser.find_element(By.ID, part).rect
            assert rect["x"] >= 0 and rect["x"] + rect["width"] <= PHONE[0], (part, rect)
        assert browser.find_element(By.ID, "viewer-download").is_displayed()
        browser.save_screenshot(str(PHONE_VIEWER_SCREENSHOT))
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        wait_for(browser, "the viewer closed", lambda d: d.find_element(By.ID, "viewer").get_attribute("open") is None)
        browser.set_window_size(*DESKTOP)
        with capsys.disabled():
            print(f"\npage screenshots: {SCREENSHOT} {PHONE_SCREENSHOT} {PHONE_VIEWER_SCREENSHOT}")

        # Find by name: the server's search, any case.
        search = browser.find_element(By.ID, "name-filter")
        search.send_keys("COFF")
        wait_for(browser, "only coffee.jpg", lambda d: shown_ids(d) == [uploaded["coffee.jpg"]])
        assert browser.find_element(By.ID, "count").text == "1 item"
        search.clear()
        search.send_keys(" ")
        wait_for(browser, "everything again", lambda d: len(shown_ids(d)) == 4)

        # The state filter lists only what is in that state; uploads that were refused stand aside.
        choose(browser, [files / "broken.jpg"])
        wait_for(browser, "broken.jpg refused again", lambda d: len(  # this visit's: a reload forgets refusals
            d.find_elements(By.CSS_SELECTOR, '[data-filename="broken.jpg"][data-state="Refused"]')) == 1)
        Select(browser.find_element(By.ID, "state-filter")).select_by_value("Processing")
        wait_for(browser, "nothing in that state", lambda d: shown_ids(d) == [])
        assert not [e for e in browser.find_elements(By.CSS_SELECTOR, '[data-state="Refused"]') if e.is_displayed()]
        assert browser.find_element(By.ID, "empty").text == "Nothing matches."
        Select(browser.find_element(By.ID, "state-filter")).select_by_value("")
        wait_for(browser, "everything again", lambda d: len(shown_ids(d)) == 4)

        # The tile opens the larger view: the largest size, copy link, download, details folded away.
        media_id = uploaded["coffee.jpg"]
        item(browser, media_id).find_element(By.CSS_SELECTOR, "button.open").click()
        viewer = browser.find_element(By.ID, "viewer")
        wait_for(browser, "the viewer", lambda d: viewer.get_attribute("open") is not None)
        assert browser.find_element(By.ID, "viewer-title").text == "coffee.jpg"
        large = service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary", "size": "large"}).content
        image = browser.find_element(By.ID, "viewer-image")
        wait_for(browser, "the large thumbnail", lambda d: image.get_property("naturalWidth") ==
                 Image.open(io.BytesIO(large)).width)
        facts = browser.find_element(By.ID, "viewer-facts").text
        width, height = Image.open(io.BytesIO(large)).size
        assert f"{width} \N{MULTIPLICATION SIGN} {height}" in facts and coffee_size in facts
        link = browser.find_element(By.ID, "viewer-link").get_attribute("value")
        assert link == f"{service.url}/images/{media_id}/thumbnail?encoding=binary&size=large"
        assert requests.get(link, timeout=10).content == large
        browser.execute_cdp_cmd("Browser.grantPermissions", {  # as a person's click grants it
            "origin": service.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
        browser.find_element(By.ID, "viewer-copy").click()
        wait_for(browser, "the link copied", lambda d: d.find_element(By.ID, "viewer-copy").text == "Link copied")
        assert browser.execute_async_script(
            "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0](String(e)))") == link
        download = browser.find_element(By.ID, "viewer-download")
        assert download.get_attribute("download") == "coffee-large.jpg"
        # The very bytes shown (the page's CSP lets no script read a blob: URL back to compare them).
        assert download.get_attribute("href").startswith("blob:")
        assert download.get_attribute("href") == image.get_attribute("src")
        details = browser.find_element(By.ID, "viewer-details")
        assert not details.is_displayed()  # the internals only when asked for
        browser.find_element(By.CSS_SELECTOR, ".viewer details summary").click()
        assert service.get(f"/images/{media_id}").json()["sha256"] in details.text
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        wait_for(browser, "the viewer closed", lambda d: viewer.get_attribute("open") is None)
        assert page_errors(browser) == []


def test_page_asks_for_the_api_key_and_keeps_it_for_the_session(browser: WebDriver, tmp_path: Path) -> None:
    key = "page-test-key"
    with Service("embedded", tmp_path / "service", THUMBNAILIFY_AUTH_API_KEY=key) as service:
        assert service.get("/images").status_code == 401
        assert_page_files_served_and_cached(service)
        service.http.headers["Authorization"] = f"Bearer {key}"
        earlier = [service.upload(tiny_png(shade), "image/png") for shade in range(PAGE_SIZE + 1)]
        browser.get(service.url + "/")
        form = browser.find_element(By.ID, "key-form")
        wait_for(browser, "the key form", lambda d: form.is_displayed())
        field = browser.find_element(By.ID, "api-key")
        assert field.get_attribute("autocomplete") == "off"  # a password manager has no reason to keep it
        field.send_keys("not-the-key\n")
        wait_for(browser, "the wrong key refused", lambda d: "not accepted" in d.find_element(By.ID, "key-error").text)
        field.send_keys(key + "\n")
        wait_for(browser, "a live stream with the key", live)
        assert not form.is_displayed()

        # A page at a time, newest first; "Load more" follows the cursor.
        wait_for(browser, "the first page", lambda d: len(media_items(d)) == PAGE_SIZE)
        browser.find_element(By.ID, "load-more").click()
        wait_for(browser, "the second page", lambda d: len(media_items(d)) == PAGE_SIZE + 1)
        assert [e.get_attribute("data-media-id") for e in media_items(browser)] == earlier[::-1]
        assert not browser.find_element(By.ID, "load-more").is_displayed()

        choose(browser, [PHOTOS / "chelsea.png"])
        wait_for(browser, "the photo Completed with its thumbnail", lambda d: card(d, "chelsea.png").get_attribute(
            "data-state") == "Completed" and thumbnail_shown(card(d, "chelsea.png")))
        media_id = card(browser, "chelsea.png").get_attribute("data-media-id")

        browser.refresh()  # the key is kept for the tab: no question, the item is there
        wait_for(browser, "the item after a reload", lambda d: thumbnail_shown(item(d, media_id)))
        assert not browser.find_element(By.ID, "key-form").is_displayed()
        assert browser.execute_script("return sessionStorage.getItem('thumbnailify.apiKey')") == key
        assert page_errors(browser) == []


MODULES = ROOT / "server" / "static" / "modules"


def test_a_changed_module_gets_a_new_url_in_every_module_that_imports_it_and_in_the_page(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(ROOT / "server" / "static", static)
    before = Site(static)
    api = before.assets["modules/api.js"]
    main = before.assets["modules/main.js"].body.decode()
    assert f'from "./api.js?v={api.etag}";' in main
    assert before.assets["modules/dom.js"].body == (MODULES / "dom.js").read_bytes()  # it imports nothing
    assert 'from "./api.js"' in (MODULES / "main.js").read_text()  # the file on disk, unchanged

    with (static / "modules" / "api.js").open("a") as module:
        module.write("// changed\n")
    after = Site(static)
    changed = {name for name, asset in after.assets.items() if asset.etag != before.assets[name].etag}
    # api.js, what imports it and what imports those: never an old module under a kept URL.
    assert changed == {f"modules/{name}" for name in ("api.js", "gallery.js", "events.js", "uploads.js", "viewer.js",
                                                      "main.js")}
    assert f'from "./api.js?v={after.assets["modules/api.js"].etag}";' in after.assets["modules/main.js"].body.decode()
    assert f'data-main="/static/modules/main.js?v={after.assets["modules/main.js"].etag}"' in after.page.body.decode()


def test_a_module_importing_a_missing_file_or_itself_stops_the_start(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(ROOT / "server" / "static", static)
    viewer = static / "modules" / "viewer.js"
    original = viewer.read_text()
    viewer.write_text('import { x } from "./nowhere.js";\n' + original)
    with pytest.raises(ValueError, match=re.escape("viewer.js: imports nowhere.js, which is not in")):
        Site(static)
    viewer.write_text('import { items } from "./gallery.js";\n' + original)  # gallery.js imports viewer.js
    cycle = "modules that import each other: gallery.js -> viewer.js -> gallery.js"
    with pytest.raises(ValueError, match=re.escape(cycle)):
        Site(static)


def test_page_loads_its_modules_under_their_fingerprints(browser: WebDriver, tmp_path: Path) -> None:
    site = Site(ROOT / "server" / "static")
    modules = {name.removeprefix("modules/"): asset for name, asset in site.assets.items()
               if name.startswith("modules/")}
    assert set(modules) == {path.name for path in MODULES.glob("*.js")} >= {
        "api.js", "events.js", "gallery.js", "uploads.js", "viewer.js", "main.js"}
    with Service("embedded", tmp_path / "service") as service:
        for name, asset in modules.items():
            current = service.get(f"/static/modules/{name}", params={"v": asset.etag})
            assert current.status_code == 200 and current.content == asset.body, name
            assert current.headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert service.get(f"/static/modules/{name}").headers["Cache-Control"] == "no-cache"
        for path in ("/static/modules/nowhere.js", "/static/modules/index.html", "/static/modules/app.css",
                     "/static/api.js", "/static/modules%2Fapi.js", "/static/modules/..%2Fapp.js",
                     "/static/modules/%2e%2e"):
            missing = service.get(path)
            assert (missing.status_code, missing.json()) == (404, {"message": "no such file"}), path

        browser.get(service.url + "/")
        wait_for(browser, "a live event stream", live)
        assert browser.execute_script(
            "return document.querySelector('script[src^=\"/static/app.js\"]').type") == "module"
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map((entry) => entry.name)"
            ".filter((url) => url.includes('/static/modules/'))")
        assert sorted(loaded) == sorted(f"{service.url}/static/modules/{name}?v={asset.etag}"
                                        for name, asset in modules.items())
        assert page_errors(browser) == []


def readme_browser_example() -> str:
    """The README's browser upload ("Using it from your own app"), as a reader copies it."""
    found = re.search(r"\*\*Browser\.\*\*.*?```js\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert found, "README.md has no browser example"
    return found[1]


def test_the_readmes_browser_example_uploads_with_progress_and_shows_the_thumbnail(browser: WebDriver,
                                                                                  tmp_path: Path) -> None:
    """Run as written, on the service's own page (url ""): `input`, `progressBar` and `img` are the
    reader's elements, here a file input, an object noting each progress value and an Image."""
    photo = PHOTOS / "chelsea.png"
    with Service("embedded", tmp_path / "service") as service:
        browser.get(service.url + "/")
        wait_for(browser, "a live event stream", live)
        browser.execute_script("const input = document.createElement('input'); input.type = 'file';"
                               "input.id = 'readme-input'; document.body.append(input);")
        browser.find_element(By.ID, "readme-input").send_keys(str(photo))
        browser.set_script_timeout(WAIT)
        outcome = browser.execute_async_script(f"""
const done = arguments[arguments.length - 1];
const input = document.getElementById("readme-input");
const seen = [];
const progressBar = {{ set value(fraction) {{ seen.push(fraction); }} }};
const img = new Image();
const console = {{ error: (message) => done({{ error: String(message) }}) }};
img.addEventListener("load", () => done({{ width: img.naturalWidth, height: img.naturalHeight, src: img.src, seen }}));
img.addEventListener("error", () => done({{ error: `the thumbnail did not load from ${{img.src}}` }}));
(async () => {{
{readme_browser_example()}
}})().catch((error) => done({{ error: String(error) }}));
""")
        assert "error" not in outcome, outcome
        assert outcome["seen"] and outcome["seen"][-1] == 1  # progress told, up to the whole file
        [listed] = service.get("/images").json()["items"]
        assert listed["filename"] == photo.name and listed["state"] == "Completed"
        assert outcome["src"] == f"{service.url}/images/{listed['media_id']}/thumbnail?encoding=binary"
        data, _ = service.thumbnail(listed["media_id"])
        assert (outcome["width"], outcome["height"]) == Image.open(io.BytesIO(data)).size
        assert page_errors(browser) == []
