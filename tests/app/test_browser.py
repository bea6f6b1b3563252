"""End to end in a real headless Chromium: serve ``wsovvis app``, drive every tab, check what comes back.

Test tab: prompts on a synthetic image with the colour stand-ins -> annotated preview and table; a
non-image upload and a video longer than the preview -> messages in the page, the server keeps
answering. Batch: two images -> the ZIP is downloaded by the browser and loaded with pycocotools.
Review: a JSON that is not YouTube-VIS and a frame folder that does not match -> messages; then a
synthetic JSON is opened, one tube rejected, the curated JSON saved and checked (`wsovvis check`).
Metrics: plots and AP table of a run. Throughout: no request leaves 127.0.0.1, nothing is written
into the app's working folder; closing the tab removes the session folder, stopping the server its
root. Screenshots of each tab are saved as artifacts (``$WSOVVIS_TEST_ARTIFACTS`` or pytest's tmp
folder) and their folder is logged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.app.browser import AppServer, external, find_browser, make_driver, requested_urls
from tests.app.helpers import scene, write_review_set, write_run_dir
from wsovvis.cli import main as cli_main

log = logging.getLogger(__name__)
WAIT = 30  # seconds for one page update (2 loaded cores)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser_binaries():
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium + chromedriver found (Debian: apt-get install chromium chromium-driver; "
                    "or set WSOVVIS_CHROMIUM / WSOVVIS_CHROMEDRIVER)")
    return found


class Page:
    """Thin helpers over Selenium for Gradio's widgets, found by their ``elem_id``."""

    def __init__(self, driver, shots: Path):
        self.d = driver
        self.shots = shots
        self.urls: list[str] = []

    def el(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def els(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait(self, cond, what: str, timeout: float = WAIT):
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                out = cond()
                if out:
                    return out
            except (StaleElementReferenceException, WebDriverException):
                pass
            time.sleep(0.25)
        self.shot(f"timeout_{what.replace(' ', '_')[:40]}")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def text(self, elem_id: str) -> str:
        return self.el(f"#{elem_id}").text

    def wait_text(self, elem_id: str, needle: str, timeout: float = WAIT) -> str:
        return self.wait(lambda: needle in self.text(elem_id) and self.text(elem_id), f"'{needle}' in #{elem_id}",
                         timeout)

    def tab(self, label: str) -> None:
        btn = self.wait(lambda: [b for b in self.els("button[role=tab]") if b.text.strip() == label],
                        f"tab {label}")[0]
        btn.click()
        self.wait(lambda: btn.get_attribute("aria-selected") == "true", f"tab {label} selected")

    def type(self, elem_id: str, text: str) -> None:
        box = self.el(f"#{elem_id} textarea, #{elem_id} input")
        box.clear()
        box.send_keys(text)

    def upload(self, elem_id: str, paths: list[Path]) -> None:
        """Choose files in a gr.File (its Clear button first when it already holds a file)."""
        if not self.els(f"#{elem_id} input[type=file]"):
            self.el(f"#{elem_id} button[aria-label=Clear]").click()
        inp = self.wait(lambda: self.els(f"#{elem_id} input[type=file]"), f"the file input of #{elem_id}")[0]
        inp.send_keys("\n".join(str(p) for p in paths))

    def click(self, elem_id: str) -> None:
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", self.el(f"#{elem_id}"))
        self.el(f"#{elem_id}").click()

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def collect_urls(self) -> list[str]:
        self.urls += requested_urls(self.d)
        return self.urls


def _artifacts(tmp_path_factory) -> Path:
    env = os.environ.get("WSOVVIS_TEST_ARTIFACTS")
    root = Path(env) / "app_browser" if env else tmp_path_factory.mktemp("artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_app_in_a_real_browser(browser_binaries, tmp_path, tmp_path_factory):
    shots = _artifacts(tmp_path_factory)
    log.warning("browser test screenshots: %s", shots)
    print(f"\nbrowser test screenshots: {shots}")
    for d in ("cwd", "tmp", "profile", "downloads", "data"):
        (tmp_path / d).mkdir()
    data = tmp_path / "data"
    Image.fromarray(scene(120, 160)).save(data / "scene.png")
    Image.fromarray(scene(120, 160, shift=20)).save(data / "scene2.png")
    (data / "notes.txt").write_text("this is not an image")
    clip = data / "clip.avi"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for t in range(10):
        vw.write(np.ascontiguousarray(scene(120, 160, shift=t)[:, :, ::-1]))
    vw.release()
    review_json, frames = write_review_set(data / "review")
    (data / "coco.json").write_text(json.dumps({"images": [], "annotations": [{"segmentation": []}],
                                                "categories": []}))
    run_dir = write_run_dir(data / "run")

    args = ["--detector", "standin:colour", "--segmenter", "standin:colour", "--max_preview_frames", "4"]
    server = AppServer(args, cwd=tmp_path / "cwd", log_path=shots / "server.log", tmp_dir=tmp_path / "tmp")
    driver = None
    t0, laps = time.monotonic(), {}

    def lap(name: str) -> None:
        laps[name] = round(time.monotonic() - t0, 1)

    try:
        server.wait_ready()
        lap("server ready")
        session_roots = list((tmp_path / "tmp").iterdir())
        assert len(session_roots) == 1 and session_roots[0].name.startswith("wsovvis-app-")
        driver = make_driver(browser_binaries, tmp_path / "profile", tmp_path / "downloads")
        lap("browser started")
        driver.get(server.url)
        page = Page(driver, shots)
        page.wait(lambda: page.els("#test-run"), "the page")

        # ---- Test: a non-image first (message, server alive), then prompts on an image.
        page.type("test-prompts", "red, blue = sky")
        page.upload("test-media", [data / "notes.txt"])
        msg = page.wait_text("test-status", "error:")
        assert "notes.txt: not an image or a video" in msg and "Traceback" not in msg
        page.upload("test-media", [clip])
        msg = page.wait_text("test-status", "the preview uses the first 4")
        assert "clip.avi: 10 frames" in msg and "2 tube(s) over 4 frame(s)" in msg  # red + sky, tracked
        page.wait(lambda: len(page.els("#test-preview img")) == 2, "the tubes' contact sheet and GIF")
        assert "0-3" in page.wait_text("test-table", "present in")
        page.shot("1_test_tab_video")
        page.upload("test-media", [data / "scene.png"])
        page.wait_text("test-status", "2 detection(s) on 1 frame(s)")
        page.wait(lambda: page.els("#test-preview img"), "the annotated preview")
        table = page.wait_text("test-table", "sky")
        assert "red" in table and "400" in table and "600" in table  # areas of the two rectangles
        src = page.el("#test-preview img").get_attribute("src")
        assert src.startswith(server.url)
        page.shot("1_test_tab")

        lap("test tab")
        # ---- Batch: two images -> gallery, counts, ZIP downloaded by the browser.
        page.tab("Batch")
        page.el("#batch-size input[type=number]").clear()
        page.el("#batch-size input[type=number]").send_keys("80\t")
        page.upload("batch-files", [data / "scene.png", data / "scene2.png"])
        page.wait(lambda: len(page.els("#batch-files a, #batch-files .file-name, #batch-files td")) >= 2,
                  "both files uploaded")
        page.click("batch-run")
        page.wait_text("batch-status", "2 image(s) labelled", timeout=60)
        page.wait(lambda: len(page.els("#batch-gallery img")) >= 2, "the batch gallery")
        assert "scene2.png" in page.wait_text("batch-counts", "scene2.png")
        link = page.wait(lambda: page.els("#batch-zip a[href]"), "the ZIP link")[0]
        page.shot("2_batch_tab")
        driver.execute_script("arguments[0].click();", link)
        dl = tmp_path / "downloads"
        zips = page.wait(lambda: [p for p in dl.glob("*.zip")] if not list(dl.glob("*.crdownload")) else None,
                         "the ZIP download")
        import zipfile

        from pycocotools.coco import COCO

        with zipfile.ZipFile(zips[0]) as z:
            assert sorted(z.namelist()) == ["coco_export.json", "images/scene.png", "images/scene2.png"]
            z.extractall(tmp_path / "unzipped")
        coco = COCO(str(tmp_path / "unzipped" / "coco_export.json"))
        assert len(coco.getAnnIds()) == 4 and {c["name"] for c in coco.cats.values()} == {"red", "sky"}
        assert {(im["height"], im["width"]) for im in coco.imgs.values()} == {(60, 80)}  # long side 80

        lap("batch tab")
        # ---- Review: bad inputs, then open, reject tube 2, save.
        page.tab("Review")
        page.type("review-json", str(data / "coco.json"))
        page.type("review-frames", str(frames))
        page.click("review-open")
        msg = page.wait_text("review-status", "error:")
        assert "coco.json" in msg and "COCO" in msg
        page.type("review-json", str(review_json))
        page.type("review-frames", str(data))
        page.click("review-open")
        msg = page.wait_text("review-status", "does not match")
        page.type("review-frames", str(frames))
        page.click("review-open")
        page.wait_text("review-status", "opened tubes.json: 2 videos, 4 tubes")
        page.wait(lambda: page.els("#review-sheet img"), "the contact sheet")
        assert "dog" in page.wait_text("review-tubes", "0-1, 3")
        box = page.wait(lambda: [lb for lb in page.els("#review-pick label") if lb.text.startswith("#2 ")],
                        "tube #2 in the picker")[0]
        box.click()
        page.click("review-reject")
        page.wait_text("review-status", "rejected: tube #2")
        assert "rejected" in page.wait_text("review-tubes", "rejected")
        page.click("review-save")
        msg = page.wait_text("review-status", "saved 3 tubes")
        curated = review_json.parent / "tubes.curated.json"
        assert str(curated) in msg
        page.shot("3_review_tab")
        saved = json.loads(curated.read_text())
        assert [a["id"] for a in saved["annotations"]] == [1, 3, 4]
        assert len(json.loads(review_json.read_text())["annotations"]) == 4  # the input is untouched
        assert cli_main(["check", str(curated), "--img_root", str(frames), "--no_progress"]) == 0

        lap("review tab")
        # ---- Metrics: a folder that is not a run, then the run.
        page.tab("Metrics")
        page.type("metrics-run", str(data))
        page.click("metrics-load")
        assert "has no metrics.jsonl" in page.wait_text("metrics-status", "error:")
        page.type("metrics-run", str(run_dir))
        page.click("metrics-load")
        page.wait_text("metrics-status", "2 evaluations")
        page.wait(lambda: page.els("#metrics-loss img") and page.els("#metrics-ap img"), "the plots")
        assert "25.0" in page.wait_text("metrics-table", "AP50")
        page.shot("4_metrics_tab")

        lap("metrics tab")
        # ---- Offline and tidy: no request left the machine, the working folder stayed empty.
        assert external(page.collect_urls(), server.port) == []
        assert server.net_attempts() == []  # nor did the server try (telemetry, version check, hub)
        assert server.alive()
        assert list((tmp_path / "cwd").iterdir()) == []
        assert np.asarray(Image.open(shots / "1_test_tab.png")).std() > 5  # a real picture, not a blank page
        # Closing the tab ends the session: its folder (previews, ZIP, plots) goes while the server runs on.
        sessions = session_roots[0] / "sessions"
        assert len(list(sessions.iterdir())) == 1 and any(sessions.rglob("autolabel.zip"))
        driver.get("about:blank")
        page.wait(lambda: not list(sessions.iterdir()), "the session folder removed on unload")
        assert server.alive()
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
        lap("stopped")
        (shots / "timings.json").write_text(json.dumps(laps, indent=1))  # seconds since the server was started
    assert list((tmp_path / "tmp").iterdir()) == [], "the session folder must be removed when the server stops"
