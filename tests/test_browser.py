"""colorize.ipynb in a real browser: JupyterLab on 127.0.0.1, Debian's headless chromium driven by
Playwright. Run the notebook, upload a photo through the FileUpload button, see it colorized; click
the colour picture with the mouse (ipyevents hears it) and see a hint listed and the colour change;
remove the hint and get the automatic colour back.

Nothing leaves the machine: JupyterLab's update check and news are off, and the page may only
reach 127.0.0.1. The screenshot is kept in tests/artifacts/.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import papermill
import pytest
import requests
from PIL import Image
from skimage import data as skdata

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,  # JupyterLab in headless Chromium: left out of the quick subset
              pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# A fresh JupyterLab asks which kernel to start and whether to fetch news: answer both up front.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
                "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """(base URL, token) of a JupyterLab serving colorize.ipynb, parameterized with a small model
    that takes hints."""
    from test_widget import export_hinted_model

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    model = export_hinted_model(tmp_path / "hinted" / "generator.safetensors")
    papermill.execute_notebook(str(ROOT / "notebooks" / "colorize.ipynb"), str(notebooks / "colorize.ipynb"),
                               parameters={"checkpoint": str(model)}, prepare_only=True)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, **{name: str(tmp_path / "jupyter" / name.lower()) for name in (
        "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")}}
    for plugin, settings in LAB_SETTINGS.items():
        path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(settings))
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "jupyterlab.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={notebooks}",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
             "--LabApp.extension_manager=readonly"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_server(base, token, server)
            yield base, token
        finally:
            shut_down(base, token, server)


def wait_for_server(base: str, token: str, server: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "JupyterLab exited; see jupyterlab.log in the test's folder"
        try:
            if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on {base} within {timeout_s} s")


def shut_down(base: str, token: str, server: subprocess.Popen) -> None:
    """The server's own shutdown stops its kernels too; terminate only if it does not answer."""
    try:
        requests.post(f"{base}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=5)
        server.wait(timeout=30)
    except (requests.RequestException, subprocess.TimeoutExpired):
        server.terminate()
        server.wait(timeout=30)


def only_local(route) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()  # the Colab badge, fonts, anything outside this machine


# A digest of the colour picture's pixels as the browser decoded them (0 until it has loaded):
# the picture's src is a fresh blob URL at every update, so only its pixels tell a change.
PIXELS_DIGEST = """() => {
    const img = document.querySelector('img.colorful-world-colorized');
    if (!img || !img.complete || !img.naturalWidth) return 0;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let digest = 7;
    for (let i = 0; i < data.length; i++) digest = (Math.imul(digest, 31) + data[i]) >>> 0;
    return digest || 1;
}"""
DOWNLOAD_HREF = "() => (document.querySelector('a[download]') || {}).href || ''"


def test_colorize_notebook_in_jupyterlab_colorizes_an_uploaded_photo_and_takes_a_click(jupyterlab, tmp_path):
    base, token = jupyterlab
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).convert("L").save(photo)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "colorize_notebook.png"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", only_local)
        try:
            page.goto(f"{base}/lab/tree/colorize.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)  # run all once it is up
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            upload = page.locator(".widget-upload")
            upload.wait_for(timeout=120_000)  # a kernel start and the torch import first
            with page.expect_file_chooser() as chooser:
                upload.click()
            chooser.value.set_files(str(photo))
            page.get_by_text("astronaut.jpg (512 × 512) in colour.").wait_for(timeout=60_000)
            page.get_by_text("Download astronaut-colour.png").wait_for(timeout=60_000)
            page.wait_for_function(f"({PIXELS_DIGEST})() !== 0")
            automatic, automatic_href = page.evaluate(PIXELS_DIGEST), page.evaluate(DOWNLOAD_HREF)
            assert len(page.locator("img.colorful-world-colorized").all()) == 1
            titles = page.locator(".jp-OutputArea .widget-label").all_inner_texts()
            assert [t for t in titles if t in ("Your photo", "In colour") or t.startswith("In black")] == \
                ["Your photo", "In colour"]  # a grey upload: two panels

            colour = page.locator("img.colorful-world-colorized")
            colour.scroll_into_view_if_needed()
            box = colour.bounding_box()
            start = time.perf_counter()
            colour.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})  # a real mouse click
            page.wait_for_function(f"(before) => ![0, before].includes(({PIXELS_DIGEST})())", arg=automatic,
                                   timeout=60_000)
            print(f"click to new picture in the browser: {1e3 * (time.perf_counter() - start):.0f} ms")
            page.get_by_text("1 colour hint.").wait_for(timeout=30_000)
            page.wait_for_function(f"(before) => ({DOWNLOAD_HREF})() !== before", arg=automatic_href)
            assert page.locator(".colorful-world-remove-hint").count() == 1
            # The hint sits where the mouse was: 30% across and 60% down the 512 x 512 photo.
            x, y = (int(n) for n in page.locator(".jp-OutputArea button", has_text=" at (").inner_text()
                    .split("(")[1].rstrip(")").split(","))
            assert abs(x - 0.3 * 512) <= 3 and abs(y - 0.6 * 512) <= 3, (x, y)
            page.screenshot(path=str(ARTIFACTS / "colorize_notebook_hint.png"), full_page=True)

            page.locator(".colorful-world-remove-hint").click()
            page.wait_for_function(f"(before) => ({DOWNLOAD_HREF})() === before", arg=automatic_href,
                                   timeout=30_000)  # the automatic colour back, to the byte
            page.wait_for_function(f"(before) => ({PIXELS_DIGEST})() === before", arg=automatic)
        finally:
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")
            browser.close()
    assert screenshot.stat().st_size > 0
