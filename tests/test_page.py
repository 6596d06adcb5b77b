"""The upload page in Debian's headless Chromium, driven by Playwright, against a real server on
127.0.0.1 running the bundled model, which takes hints.

With JavaScript: a 6000x4000 photo shows before and after side by side, whole, within the
window; the download link saves the PNG under the upload's name; an error is a sentence on the
page; a click on the result and a colour change give another result. Without JavaScript: the
plain form colorizes into the frame, settings included.

Screenshots go to each test's tmp_path and to tests/artifacts/ (ignored by git), for people to
look at.
"""

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.color import rgb2lab

from colorful_world.apps.server import create_app
from colorful_world.core.color_lut import srgb_to_ab
from test_server import hinted, hinted_url, serving  # noqa: F401 (hinted, hinted_url: fixtures)

pytestmark = pytest.mark.slow  # the upload page in headless Chromium: left out of the quick subset

sync_api = pytest.importorskip("playwright.sync_api")  # the `dev` extra

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
WINDOW = {"width": 1280, "height": 800}
SLOW_MS = 180_000  # a 24 MP photo on a busy 2-core CPU: decoding, colour and PNG take seconds


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):  # tests/run.sh installs it; never a downloaded browser
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install chromium (tests/run.sh does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, javascript: bool = True):
    """A page that may reach only 127.0.0.1 (the page is self-contained: nothing else is asked
    for), with its script errors collected in `page.errors`."""
    context = browser.new_context(viewport=WINDOW, java_script_enabled=javascript, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    outside = []

    def only_local(route):
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.outside = outside
    return page


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # screenshots are for people, not for git
    shutil.copy(path, ARTIFACTS / f"page_{name}.png")


def grey_photo(path: Path, width: int, height: int) -> Path:
    Image.fromarray(skdata.astronaut()).convert("L").resize((width, height), Image.BICUBIC).save(path, quality=85)
    return path


def colorize(page, photo: Path):
    """Choose `photo` and press Colorize; the answer to the upload (a Playwright Response)."""
    page.set_input_files("input[name=image]", str(photo))
    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as answer:
        page.click("button[type=submit]")
    return answer.value


def wait_until_done(page) -> None:
    page.wait_for_selector("body[data-state=done]", state="attached", timeout=SLOW_MS)


def fitted(box: dict) -> bool:
    return (box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= WINDOW["width"]
            and box["y"] + box["height"] <= WINDOW["height"])


def test_a_6000x4000_photo_shows_whole_before_and_after_and_downloads_under_its_name(browser, hinted_url, tmp_path):
    photo = grey_photo(tmp_path / "grandma.jpg", 6000, 4000)
    page = new_page(browser)
    page.goto(f"{hinted_url}/")
    page.set_input_files("input[name=image]", str(photo))
    page.click("button[type=submit]")
    # Progress while it works: a bar and a word for the stage.
    page.wait_for_selector("#progress:not([hidden])", timeout=10_000)
    assert re.fullmatch(r"(Uploading|Colorizing|Receiving the colour photo)…",
                        page.locator("#progress > span").text_content())
    screenshot(page, tmp_path, "working")
    wait_until_done(page)
    assert page.locator("#progress").is_hidden() and page.locator("#error").is_hidden()
    screenshot(page, tmp_path, "before_and_after")

    sizes = page.evaluate("[...document.querySelectorAll('#before, #after')]"
                          ".map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[6000, 4000], [6000, 4000]]
    before, after = (page.locator(selector).bounding_box() for selector in ("#before", "#after"))
    for box in (before, after):
        assert fitted(box), box  # the whole photo in the window, not a corner of it at 100%
        assert box["width"] >= 500 and abs(box["width"] / box["height"] - 1.5) < 0.01, box
    assert after["x"] >= before["x"] + before["width"]  # side by side
    assert abs(before["y"] - after["y"]) < 2 and abs(before["height"] - after["height"]) < 2

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "grandma-colour.png"
    saved = tmp_path / "saved" / download.value.suggested_filename
    download.value.save_as(saved)
    with Image.open(saved) as png:
        assert (png.format, png.size, png.mode) == ("PNG", (6000, 4000), "RGB")
    assert page.errors == [] and page.outside == []


def test_an_error_is_a_sentence_on_the_page(browser, hinted_url, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Dear server, please colorize me.")
    page = new_page(browser)
    page.goto(f"{hinted_url}/")
    answer = colorize(page, notes)
    assert answer.status == 415
    error = page.locator("#error")
    error.wait_for()
    text = error.text_content()
    assert text.startswith("Could not colorize notes.txt: the upload is not an image") and text.endswith(").")
    assert "{" not in text and '"error"' not in text  # a sentence, not the JSON it came in
    assert page.locator("#viewer").is_hidden()
    screenshot(page, tmp_path, "error")
    assert page.errors == []


def test_a_photo_over_the_byte_limit_is_refused_before_it_is_sent(browser, hinted, tmp_path):
    photo = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300), np.uint8)).save(photo)  # 60 KB
    with serving(create_app(hinted, max_bytes=20_000)) as base:
        page = new_page(browser)
        posts = []
        page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
        page.goto(f"{base}/")
        page.set_input_files("input[name=image]", str(photo))
        page.click("button[type=submit]")
        page.locator("#error").wait_for()
        kilobytes = -(-photo.stat().st_size // 1000)
        assert page.locator("#error").text_content() == \
            f"Could not colorize big.png: it is {kilobytes} KB, more than the 20 KB this server takes."
        assert posts == [] and page.errors == []


def png_pixels(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def posted_field(request, name: str) -> str | None:
    """A field of the multipart form `request` posted."""
    match = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n(.*?)\r\n--', request.post_data_buffer, re.S)
    return match.group(1).decode() if match else None


def test_a_click_on_the_result_and_a_colour_change_give_another_result(browser, hinted_url, hinted, tmp_path):
    width, height = 1200, 800
    photo = grey_photo(tmp_path / "family.jpg", width, height)
    page = new_page(browser)
    page.goto(f"{hinted_url}/")
    automatic = png_pixels(colorize(page, photo))
    wait_until_done(page)

    # A click on the result, a third of the way across and two thirds down (on the suit): the
    # hint lands on the photo's own pixel there, its colour the result's at that pixel.
    box = page.locator("#after").bounding_box()
    click_x, click_y = round(box["x"] + box["width"] / 3), round(box["y"] + box["height"] * 2 / 3)
    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as first:
        page.mouse.click(click_x, click_y)
    wait_until_done(page)
    item = page.locator("#hints li")
    assert item.count() == 1
    x, y = map(int, re.search(r"at \((\d+), (\d+)\)", item.text_content()).groups())
    scale = width / box["width"]  # photo pixels per pixel on the screen
    assert abs(x - (click_x - box["x"]) * scale) <= scale + 1 and abs(y - (click_y - box["y"]) * scale) <= scale + 1
    picker = item.locator("input[type=color]")
    start = picker.input_value()
    assert start == "#%02x%02x%02x" % tuple(automatic[y, x])
    assert json.loads(posted_field(first.value.request, "hints")) == [[x, y, start]]

    # A new colour: the page posts it, and shows the new result.
    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as second:
        picker.fill("#2050ff")
    assert second.value.status == 200
    wait_until_done(page)
    blue = png_pixels(second.value)
    assert json.loads(posted_field(second.value.request, "hints")) == [[x, y, "#2050ff"]]
    assert np.array_equal(blue, np.asarray(hinted.colorize(Image.open(photo), hints=[(x, y, "#2050ff")])))
    target = np.array(srgb_to_ab((0x20, 0x50, 0xff)))

    def distance(pixels: np.ndarray) -> float:
        ab = rgb2lab(pixels[y - 3:y + 4, x - 3:x + 4])[..., 1:].reshape(-1, 2).mean(axis=0)
        return float(np.linalg.norm(ab - target))

    assert distance(blue) < 0.5 * distance(automatic), (distance(blue), distance(automatic))
    shown = page.evaluate("fetch(document.querySelector('#after').src).then(r => r.arrayBuffer())"
                          ".then(b => Array.from(new Uint8Array(b)))")
    assert bytes(shown) == second.value.body()  # the picture on the page is the new result
    screenshot(page, tmp_path, "hint")

    # Removed, the hint is gone from the list, and the result is the automatic one again.
    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as third:
        item.locator("button").click()
    wait_until_done(page)
    assert page.locator("#hints li").count() == 0 and posted_field(third.value.request, "hints") is None
    assert np.array_equal(png_pixels(third.value), automatic)
    assert page.errors == [] and page.outside == []


def test_strength_and_contrast_controls_colorize_again(browser, hinted_url, tmp_path):
    photo = tmp_path / "faded.png"
    Image.fromarray(skdata.astronaut()).convert("L").resize((300, 200)).point(lambda v: 90 + v * 70 // 255).save(photo)
    page = new_page(browser)
    page.goto(f"{hinted_url}/")
    colorize(page, photo)
    wait_until_done(page)

    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as grey:
        page.fill("input[name=strength]", "0")
    wait_until_done(page)
    assert posted_field(grey.value.request, "strength") == "0"
    assert page.locator("#strength-shown").text_content() == "0.00"
    pixels = png_pixels(grey.value).astype(int)
    assert np.abs(pixels - pixels[..., :1]).max() <= 1  # strength 0: grey

    with page.expect_response(lambda r: r.url.endswith("/colorize"), timeout=SLOW_MS) as restored:
        page.check("input[name=restore_contrast]")
    wait_until_done(page)
    assert posted_field(restored.value.request, "restore_contrast") == "1"
    levels = png_pixels(restored.value)[..., 0]
    assert np.percentile(levels, 99) - np.percentile(levels, 1) > 150  # from a 70-level print
    screenshot(page, tmp_path, "grey_and_restored")
    assert page.errors == []


def test_without_javascript_the_form_colorizes_into_the_frame(browser, hinted_url, tmp_path):
    photo = grey_photo(tmp_path / "grandparents.jpg", 320, 240)
    page = new_page(browser, javascript=False)
    page.goto(f"{hinted_url}/")
    page.fill("input[name=strength]", "0.5")
    page.check("input[name=restore_contrast]")
    answer = colorize(page, photo)
    assert answer.status == 200
    assert posted_field(answer.request, "strength") == "0.5"
    assert posted_field(answer.request, "restore_contrast") == "1"
    assert answer.headers["content-disposition"] == 'inline; filename="grandparents-colour.png"'
    assert Image.open(io.BytesIO(answer.body())).size == (320, 240)
    result = page.frame_locator("iframe[name=result]").locator("img")
    result.wait_for()
    assert result.bounding_box()["width"] > 0
    assert page.locator("#viewer").is_hidden()  # the script's parts stay out of the way
    screenshot(page, tmp_path, "without_javascript")
