"""The web app in a real browser: Debian's headless Chromium driven by Selenium, against a real uvicorn
server of the app (two workers) on the test database.

No browser is downloaded at test time: /usr/bin/chromium and /usr/bin/chromedriver come from Debian's
packages (`make browser`, and .ci/run installs them when missing). Without them the browser tests FAIL in
CI (CI=true) and are skipped, with the reason, anywhere else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import URL

from tests.concurrency.helpers import Server, log_problems
from tests.dbutil import app_url, owner_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_ROOT / ".artifacts" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
STARTUP_TIMEOUT_S = 30.0


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing: run `make browser` (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -r requirements.txt"
    return None


def require_browser() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def web_server(db_url: URL) -> Iterator[Server]:
    """uvicorn app.main:app --workers 2 on a free port, against the test database; its log must stay clean."""
    port = _free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="quits-web-server-", suffix=".log")
    os.close(log_fd)
    env = {
        **os.environ,
        "DATABASE_URL": app_url(db_url).render_as_string(hide_password=False),
        "MIGRATION_DATABASE_URL": owner_url(db_url).render_as_string(hide_password=False),
        "MIGRATE_ON_STARTUP": "false",
        "PASSWORD_HASH_TIME_COST": "2",
        "PASSWORD_HASH_MEMORY_KIB": "16384",
        "PASSWORD_HASH_PARALLELISM": "1",
        "DB_POOL_SIZE": "2",  # small pools: the suite's other servers may still hold theirs
        "DB_MAX_OVERFLOW": "0",
        "DB_WRITE_POOL_SIZE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_name, "ab") as log:
        process = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", Path(log_name), process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{server.log_text()}")
            try:
                if httpx.get(server.base_url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not healthy within {STARTUP_TIMEOUT_S}s:\n{server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    problems = log_problems(server.log_text(), allowed_conflicts=set(), allowed_5xx=set())
    assert not problems, f"server log {log_name}:\n" + "\n".join(problems)
    Path(log_name).unlink()


Browser = Any  # selenium.webdriver.Chrome (selenium is imported only when the browser tests run)


@pytest.fixture
def browsers() -> Iterator[Callable[..., Browser]]:
    """Makes headless Chromium sessions (each its own cookies); all are closed after the test."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    made: list[Browser] = []

    def make(*, javascript: bool = True, width: int = 1280, height: int = 900) -> Browser:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}", "--lang=en-US", "--disable-extensions"):  # fmt: skip
            options.add_argument(arg)
        options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
        if not javascript:
            options.add_experimental_option(
                "prefs", {"intl.accept_languages": "en-US,en", "profile.managed_default_content_settings.javascript": 2}
            )
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(30)
        driver.implicitly_wait(0)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.quit()


def screenshot(driver: Browser, name: str) -> list[Path]:
    """The page at 375 px (mobile) and 1280 px, full height, under .artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for width, mobile in ((375, True), (1280, False)):
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile},
        )
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": min(max(height, 600), 6000), "deviceScaleFactor": 1, "mobile": mobile},
        )
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        path = SCREENSHOTS / f"{name}-{width}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return saved


def dark(driver: Browser, on: bool = True) -> None:
    """prefers-color-scheme: dark (or back to light) for the page."""
    features = [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


def axe_violations(driver: Browser) -> list[dict[str, Any]]:
    """axe-core (shipped as a file) run in the page: its serious and critical violations."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done([{id: String(e)}]));"
    )
    return [
        {"id": v["id"], "impact": v.get("impact"), "nodes": [n.get("target") for n in v.get("nodes", [])][:5]}
        for v in result
        if v.get("impact") in ("serious", "critical") or "impact" not in v
    ]


def have_bash_tools() -> str | None:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
