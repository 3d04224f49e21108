"""The hint editor in a real headless Chromium: click to place a point and see the colouring change, pick one
of the model's colours, place another from the keyboard, undo it, drag and nudge, save; the hints file holds
what was on screen and the saved image is that file's colouring. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from editorkit import checkpoint, photo
from PIL import Image

import colorize
from colorize.cli import cli
from colorize.editor import run_editor

pytestmark = pytest.mark.browser

CSP_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation',"
             " e => window.__csp.push(e.blockedURI + ' ' + e.violatedDirective));")
SETTLED = ("document.body.dataset.ready === '1' && document.body.dataset.busy === '0' && "
           "document.getElementById('preview').dataset.version === document.body.dataset.version")


def _wait(driver, script: str, timeout: float = 30.0):
    """Wait until the JS expression is truthy (condition-based: no timed assertions)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script("return " + script))


def _settled(driver, points: int) -> str:
    """Wait for the preview of the latest change with `points` points; return its digest."""
    _wait(driver, f"{SETTLED} && document.body.dataset.points === '{points}'")
    assert not driver.execute_script("return document.getElementById('preview').dataset.error")
    return driver.execute_script("return document.getElementById('preview').dataset.digest")


def _keys(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def test_place_pick_undo_drag_save_in_a_real_browser(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from colorize.scraper.browser import chromium

    img = photo(tmp_path / "p.png")
    model = checkpoint(tmp_path / "m.pt", hints=True)
    server = run_editor(img, model, tmp_path / "out", device="cpu")
    try:
        with chromium() as driver:
            driver.set_window_size(1400, 900)
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
            driver.get(server.url)
            auto = _settled(driver, 0)
            assert driver.find_element(By.ID, "name").text == "p.png"
            shown = driver.find_element(By.ID, "photo")
            scale = shown.size["width"] / 240
            assert shown.size["width"] > 240  # side by side, scaled up from the 240 px photo

            # Click: a point at that pixel with the model's first colour; the colouring changes.
            ActionChains(driver).move_to_element_with_offset(shown, 0, 0).click().perform()  # the centre
            first = _settled(driver, 1)
            assert first != auto
            _wait(driver, "document.querySelectorAll('#suggestions .swatch').length >= 3")
            swatches = driver.find_elements(By.CSS_SELECTOR, "#suggestions .swatch")
            picked = swatches[1].get_attribute("data-color")
            swatches[1].click()
            _wait(driver, "document.body.dataset.version === '3'")  # start, place, recolour
            picked_digest = _settled(driver, 1)

            # Keyboard: on the photo the crosshair sits where we clicked; 3 x Right, Enter places a point.
            driver.execute_script("document.getElementById('stage').focus()")
            _keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ENTER)
            second = _settled(driver, 2)
            assert second != picked_digest
            ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()  # undo
            assert _settled(driver, 1) == picked_digest  # back to one point: the same picture

            # Drag the point 20 screen px to the right, then nudge it down 1 px with the arrow key.
            marker = driver.find_element(By.CSS_SELECTOR, ".marker")
            ActionChains(driver).click_and_hold(marker).move_by_offset(10, 0).move_by_offset(10, 0).release().perform()
            dragged = _settled(driver, 1)
            assert dragged != picked_digest
            driver.find_element(By.CSS_SELECTOR, ".marker").send_keys(Keys.ARROW_DOWN)
            _settled(driver, 1)
            driver.execute_script("document.getElementById('stage').focus()")  # place one more, Delete it
            _keys(driver, Keys.ARROW_UP, Keys.ENTER)
            _settled(driver, 2)
            _keys(driver, Keys.DELETE)
            _settled(driver, 1)

            driver.find_element(By.ID, "save").click()
            hints_path = _wait(driver, "document.body.dataset.saved")
            assert not driver.execute_script("return window.__csp")
            driver.refresh()  # the page continues from the saved hints file
            _settled(driver, 1)
            assert len(driver.find_elements(By.CSS_SELECTOR, ".marker")) == 1
            urls = driver.execute_script(
                "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))")
            assert all(urlsplit(u).hostname == "127.0.0.1" for u in urls), urls
    finally:
        server.stop()

    saved = json.loads(open(hints_path).read())["points"]
    assert len(saved) == 1 and saved[0]["color"] == picked and saved[0]["size"] == 4
    x_drag = 120 + round(20 / scale)
    assert abs(saved[0]["x"] - x_drag) <= 2 and abs(saved[0]["y"] - 81) <= 2, saved
    # `predict --hints` on the saved file gives the saved image, pixel for pixel.
    res = CliRunner().invoke(cli, ["predict", "--model", str(model), str(img), "--out", str(tmp_path / "pred"),
                                   "--device", "cpu", "--hints", hints_path])
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(tmp_path / "out" / "p.color.png").convert("RGB"))
    want = np.asarray(Image.open(tmp_path / "pred" / "p.color.png").convert("RGB"))
    assert np.array_equal(got, want)
    auto = colorize.load(model, "cpu").colorize(img)  # and the saved points did change the picture
    assert not np.array_equal(got, np.asarray(auto))
