"""End to end in a real browser: `streamlit run app/Home.py` headless on 127.0.0.1, driven by Debian's chromium.

Logs in, uploads a phantom radiograph and a phantom CT volume through the file input, waits for the findings and
the heatmap, and saves screenshots to docs/screenshots/ (home, findings with heatmap, volume slice relevance).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.cli import streamlit_command
from medvl.data.phantom import read_index, synthesize
from tests.app_support import PASSWORD, app_env, save_small_model
from tests.servers import free_port, wait_http

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
START_TIMEOUT, PAGE_TIMEOUT = 300, 300


@contextmanager
def _streamlit(env: dict[str, str], tmp: Path) -> Iterator[str]:
    """``streamlit run app/Home.py`` on a free 127.0.0.1 port with ``env``, stopped on exit; yields its URL."""
    port = free_port()
    with open(tmp / "streamlit.log", "w") as log:
        process = subprocess.Popen(streamlit_command(port, 512), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health", START_TIMEOUT, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    env = {**os.environ, **app_env(tmp, save_small_model(tmp / "model"))}
    with _streamlit(env, tmp) as url:
        yield url, tmp


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1500,1300",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _until(driver, condition, timeout: float = PAGE_TIMEOUT):
    """Poll `condition(driver)` until truthy; an element Streamlit re-rendered meanwhile (stale) means poll again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)  # fmt: skip


def _find(driver, css: str, text: str | None):
    from selenium.webdriver.common.by import By

    for element in driver.find_elements(By.CSS_SELECTOR, css):
        if text is None or text in element.text:
            return element
    return False


def _wait(driver, css: str, text: str | None = None, timeout: float = PAGE_TIMEOUT):
    return _until(driver, lambda d: _find(d, css, text), timeout)


def _click(driver, css: str, text: str | None = None, timeout: float = PAGE_TIMEOUT) -> None:
    """Find and click in one polled step, so a rerun between finding and clicking does not fail the test."""

    def clicked(d):
        element = _find(d, css, text)
        if element:
            element.click()
        return bool(element)

    _until(driver, clicked, timeout)


def _wait_text(driver, text: str, timeout: float = PAGE_TIMEOUT):
    return _wait_xpath(driver, f"//*[contains(text(), {text!r})]", timeout)


def _wait_xpath(driver, xpath: str, timeout: float = PAGE_TIMEOUT):
    from selenium.webdriver.common.by import By

    return _until(driver, lambda d: next(iter(d.find_elements(By.XPATH, xpath)), False), timeout)


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    _until(driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, "input[type='file']")), False)).send_keys(str(path))


@pytest.mark.slow
def test_login_upload_findings_heatmap_and_volume_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    cohort = synthesize(tmp_path / "cohort", n_2d=1, n_3d=1, seed=3, size=256, ct_size=96, depth_range=(32, 32))
    rows = {r["kind"]: r for r in read_index(cohort.parent)}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    browser.get(url)
    _wait(browser, "input[aria-label='User name']").send_keys("ann")
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys(PASSWORD)
    _click(browser, "button", "Log in")
    _wait(browser, "[data-testid='stFileUploader']")
    _wait_text(browser, "Logged in as")
    browser.save_screenshot(str(SCREENSHOTS / "home.png"))

    _upload(browser, cohort.parent / rows["2d"]["image"])
    assert _wait_xpath(browser, "//*[starts-with(text(), 'Attribution: ')]")
    assert _wait(browser, "[data-testid='stDataFrame']")
    heatmap_css = "[data-testid='stImage'] img, [data-testid='stFullScreenFrame'] img, img"
    assert _until(browser, lambda d: (img := _find(d, heatmap_css, None)) and img.size["width"] > 100, 60)
    _wait_text(browser, "Findings")
    browser.save_screenshot(str(SCREENSHOTS / "findings_heatmap.png"))

    _upload(browser, cohort.parent / rows["3d"]["image"])
    _wait_text(browser, "Per-slice relevance")
    _click(browser, "button", "Top slice")
    _wait_text(browser, " · slice ")
    _wait_text(browser, "Top: A")
    browser.save_screenshot(str(SCREENSHOTS / "volume_relevance.png"))
    assert all((SCREENSHOTS / n).stat().st_size > 10_000 for n in ("home.png", "findings_heatmap.png",
                                                                   "volume_relevance.png"))  # fmt: skip


@pytest.fixture(scope="module")
def trained_server(tmp_path_factory, trained_phantom_model):
    """The app on the session's trained phantom model (calibrated, with a training domain) and a similar-case
    index of its cache."""
    from medvl.cli import main

    tmp = tmp_path_factory.mktemp("browser-trained")
    index = tmp / "index"
    assert main(["review", "index", "--model", str(trained_phantom_model.model_dir),
                 "--cache", str(trained_phantom_model.cache_dir), "-o", str(index)]) == 0  # fmt: skip
    env = {**os.environ, **app_env(tmp, trained_phantom_model.model_dir, prompts="default", index=str(index))}
    with _streamlit(env, tmp) as url:
        yield url


def _phantom_test_image(trained_phantom_model) -> Path:
    """A radiograph of a held-out patient of the phantom cohort (their studies are in the test split)."""
    held_out = [r for r in read_index(trained_phantom_model.cohort_dir) if r["phrasing"] == "eval"]
    return trained_phantom_model.cohort_dir / held_out[0]["image"]


@pytest.mark.slow  # trains the session's phantom model
def test_calibrated_findings_similar_cases_and_the_out_of_distribution_notice(trained_server, trained_phantom_model,
                                                                           browser, tmp_path):  # fmt: skip
    from selenium.webdriver.common.by import By

    from medvl.realdata import realdata_root

    browser.get(trained_server)
    _wait(browser, "input[aria-label='User name']").send_keys("ann")
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys(PASSWORD)
    _click(browser, "button", "Log in")
    _wait_text(browser, "Intended use.")
    _upload(browser, _phantom_test_image(trained_phantom_model))
    _wait_text(browser, "Youden")  # the caption says how the probabilities were calibrated
    assert _wait(browser, "[data-testid='stDataFrame']")
    assert not _find(browser, "[data-testid='stAlert']", "Outside what this model was trained on")
    browser.save_screenshot(str(SCREENSHOTS / "findings_calibrated.png"))

    _click(browser, "[data-testid='stSidebarNavLink']", "Similar cases")
    _wait_text(browser, "Nearest to")
    assert _until(browser, lambda d: len([i for i in d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")
                                          if i.size["width"] > 40]) >= 3, 120)  # fmt: skip
    _wait_text(browser, "similarity")
    browser.save_screenshot(str(SCREENSHOTS / "similar_cases.png"))

    root = realdata_root()
    if root is not None:  # a real chest X-ray: the notice the README shows
        outside = sorted((root / "cxr_covid" / "images").glob("*.jpg"))[0]
    else:
        cohort = synthesize(tmp_path / "ct", n_2d=0, n_3d=1, seed=4, size=128, ct_size=64, depth_range=(24, 24))
        outside = cohort.parent / read_index(cohort.parent)[0]["image"]
    _click(browser, "[data-testid='stSidebarNavLink']", "Home")
    _wait(browser, "[data-testid='stFileUploader']")
    viewer = "[data-testid='stImage'] img"  # the first image is the study in the viewer
    before = _wait(browser, viewer).get_attribute("src")
    _upload(browser, outside)
    _wait_text(browser, "Outside what this model was trained on")
    _until(browser, lambda d: (img := _find(d, viewer, None)) and img.get_attribute("src") != before
           and img.size["width"] > 40)  # fmt: skip
    _wait_text(browser, "Show the finding probabilities anyway")
    assert not _find(browser, "[data-testid='stCaptionContainer']", "Probabilities:")  # hidden until asked
    browser.save_screenshot(str(SCREENSHOTS / "ood_notice.png"))
    _click(browser, "label", "Show the finding probabilities anyway")
    _wait_text(browser, "Probabilities:")
