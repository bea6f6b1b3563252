"""Helpers for the browser test: find Chromium + chromedriver, serve the app, drive Gradio widgets.

The browser is the distribution's ``chromium`` with its ``chromedriver`` (Debian packages
``chromium`` and ``chromium-driver``; ``.ci/run`` installs them). Nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import REPO_ROOT

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1800")


def find_browser() -> tuple[str, str] | None:
    """(chromium binary, chromedriver) or None when either is missing."""
    chrome = os.environ.get("WSOVVIS_CHROMIUM") or next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium") if p
         and Path(p).is_file()), None)
    driver = os.environ.get("WSOVVIS_CHROMEDRIVER") or next(
        (p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if p
         and Path(p).is_file()), None)
    return (chrome, driver) if chrome and driver else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loaded by the server process (``sitecustomize`` on its PYTHONPATH): every name lookup or connection
# to anything but this machine is refused and written to $WSOVVIS_NET_LOG, so the test sees any
# attempt of the server (telemetry, version checks, hub downloads) to go online.
NET_GUARD = """
import os, socket
_LOG = os.environ["WSOVVIS_NET_LOG"]
_LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", None, ""}


def _note(what):
    with open(_LOG, "a") as f:
        f.write(what + "\\n")
    raise OSError("network blocked by the wsovvis browser test: " + what)


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _note("connect %s" % (address,))
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _note("connect %s" % (address,))
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and not str(host).startswith("127."):
        _note("lookup %s" % host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


class AppServer:
    """``python -m wsovvis app`` in a subprocess, in its own working folder (which must stay empty).

    The process runs with `NET_GUARD`: ``net_attempts()`` lists what it tried to reach outside.
    """

    def __init__(self, args: list[str], cwd: Path, log_path: Path, tmp_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        guard = log_path.parent / "net_guard"
        guard.mkdir(exist_ok=True)
        (guard / "sitecustomize.py").write_text(NET_GUARD)
        self.net_log = log_path.parent / "net_attempts.log"
        self.net_log.write_text("")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{guard}{os.pathsep}{REPO_ROOT}",
               "NO_PROXY": "*", "no_proxy": "*", "PYTHONUNBUFFERED": "1", "WSOVVIS_NET_LOG": str(self.net_log)}
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsovvis", "app", "--port", str(self.port), "--tmp_dir", str(tmp_dir), *args],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the app did not answer on {self.url} within {timeout} s:\n{self.log()}")

    def net_attempts(self) -> list[str]:
        return self.net_log.read_text().splitlines()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def make_driver(binaries: tuple[str, str], profile: Path, downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binaries[0]
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False,
                                           "safebrowsing.enabled": False})
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(binaries[1]), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def requested_urls(driver) -> list[str]:
    """Every URL the page requested so far (from Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def external(urls: list[str], port: int) -> list[str]:
    ok = re.compile(rf"^(https?|wss?)://(127\.0\.0\.1|localhost):{port}/|^(data|blob|about|chrome):")
    return [u for u in urls if not ok.match(u)]
