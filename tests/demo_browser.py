"""Helpers for browser tests of the Gradio demos: Debian's headless Chromium driven by Selenium.

`scripts/setup.sh` installs the Debian packages `chromium` and `chromium-driver` (/usr/bin/chromium,
/usr/bin/chromedriver); Selenium is pointed at them, so nothing is downloaded at run time. Where they are missing
the browser fixture skips with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

# before gradio is imported anywhere in the test process: no usage analytics requests from tests
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def chromium_paths() -> tuple[str | None, str | None]:
    browser = _find(os.environ.get("CHROMIUM_BIN", "") or "chromium", "/usr/bin/chromium", "chromium-browser")
    driver = _find(os.environ.get("CHROMEDRIVER_BIN", "") or "chromedriver", "/usr/bin/chromedriver",
                   "/usr/lib/chromium/chromedriver")
    return browser, driver


def start_browser(width: int = 1280, height: int = 1000):
    """Headless Debian Chromium under Selenium, or `pytest.skip` saying what is missing."""
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        pytest.skip(
            "no Debian chromium/chromedriver on this machine (found browser=%s, driver=%s); enable the browser tests "
            "with `sudo bash scripts/install_chromium.sh` (apt-get install chromium chromium-driver)" % (browser, driver)
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(demo) -> Iterator[str]:
    """Launch a Gradio app on 127.0.0.1 (a free port) in this process; yields its URL."""
    from hf_dgm.demo.common import launch

    port = free_port()
    launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - elements come and go while the page renders
            last_error = err
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")


def fetch_image(url: str):
    from PIL import Image

    with urllib.request.urlopen(url, timeout=30) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def screenshot(driver, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"could not save a screenshot to {path}"
    return path
