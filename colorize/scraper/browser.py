"""Start and always stop a headless Chromium driven by Selenium, with no surprise network traffic.

Why every flag is here:
- explicit `Service(executable_path=...)` and `binary_location`: otherwise Selenium Manager first tries to
  download a driver from the internet;
- `--no-sandbox` when running as root: Chromium refuses to start otherwise;
- a fresh temporary `--user-data-dir`, removed afterwards: no cookies or cache leak between runs;
- `--host-resolver-rules`: Chromium makes DNS look-ups of its own (updates, safe browsing...); mapping
  every host except the allowed ones to NOTFOUND keeps a test run on loopback and a real run on the site.

Usage::

    with chromium(allow_hosts=("127.0.0.1",)) as driver:
        driver.get(url)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from colorize.errors import ColorizeError
from colorize.scraper import DEFAULT_BROWSER, DEFAULT_DRIVER

log = logging.getLogger(__name__)

INSTALL_FIX = "install them with: sudo apt-get install chromium chromium-driver (or pass --browser/--driver)"

# Flags that keep Chromium quiet, small and predictable on a server (no updates, sync or GPU; one window size).
BASE_FLAGS = (
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-quic",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--password-store=basic",
    "--window-size=1920,1080",
)


def _executable(path: str | os.PathLike, what: str) -> str:
    """Resolve `path` (a path or a name on PATH) to an executable file, or fail with the install hint."""
    path = str(path)
    found = path if os.path.isfile(path) and os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        raise ColorizeError(f"{what} not found at {path}", INSTALL_FIX)
    return found


def resolver_rules(allow_hosts: Sequence[str]) -> str:
    """Chromium's host resolver rules: every host resolves to NOTFOUND except `allow_hosts` (wildcards ok)."""
    rules = ["MAP * ~NOTFOUND"] + [f"EXCLUDE {host}" for host in allow_hosts]
    return " , ".join(rules)


def chrome_options(
    browser: str,
    headless: bool,
    profile_dir: str,
    allow_hosts: Sequence[str] | None,
    user_agent: str | None = None,
    extra_args: Sequence[str] = (),
    images: bool = True,
):
    """Build the ChromeOptions for one session (separate so tests can inspect the flags)."""
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = browser
    if headless:
        opts.add_argument("--headless=new")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        opts.add_argument("--no-sandbox")
    for flag in BASE_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile_dir}")
    if allow_hosts is not None:
        opts.add_argument(f"--host-resolver-rules={resolver_rules(allow_hosts)}")
    if user_agent:
        opts.add_argument(f"--user-agent={user_agent}")
    if not images:
        # The scraper reads URLs from attributes; not loading pixels is faster and kinder to the site.
        opts.add_argument("--blink-settings=imagesEnabled=false")
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.images": 2})
    for flag in extra_args:
        opts.add_argument(flag)
    opts.page_load_strategy = "normal"
    return opts


@contextlib.contextmanager
def chromium(
    browser: str | os.PathLike = DEFAULT_BROWSER,
    driver: str | os.PathLike = DEFAULT_DRIVER,
    headless: bool = True,
    allow_hosts: Sequence[str] | None = ("127.0.0.1",),
    page_load_timeout: float = 30.0,
    user_agent: str | None = None,
    extra_args: Sequence[str] = (),
    images: bool = True,
) -> Iterator:
    """Yield a Selenium Chrome WebDriver; the browser quits and its profile is removed whatever happens.

    `images=False` stops the browser from loading pictures (layout and lazy-loading still work).
    `allow_hosts=None` lifts the DNS restriction (not recommended). Missing binaries or a browser that
    will not start raise `ColorizeError` with the apt-get line to fix it.
    """
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    browser_path = _executable(browser, "Chromium")
    driver_path = _executable(driver, "ChromeDriver")
    profile = tempfile.mkdtemp(prefix="colorize-chromium-")
    service = Service(executable_path=driver_path, log_output=os.devnull)
    opts = chrome_options(browser_path, headless, profile, allow_hosts, user_agent, extra_args, images)
    wd = None
    try:
        try:
            wd = webdriver.Chrome(service=service, options=opts)
        except WebDriverException as exc:
            first = (str(exc.msg or exc).strip().splitlines() or ["unknown error"])[0]
            hint = INSTALL_FIX
            if not headless and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
                hint = "there is no display: drop --show-browser, or " + INSTALL_FIX
            raise ColorizeError(f"Chromium did not start ({first})",
                                f"check that chromium and chromedriver versions match; {hint}") from exc
        wd.set_page_load_timeout(page_load_timeout)
        wd.set_script_timeout(page_load_timeout)
        with contextlib.suppress(WebDriverException):
            wd.set_window_size(1920, 1080)
        log.debug("chromium %s started (profile %s)", browser_version(wd), profile)
        yield wd
    finally:
        if wd is not None:
            try:
                wd.quit()
            except Exception:  # noqa: BLE001 - teardown must never mask the real error
                log.debug("driver.quit failed; stopping chromedriver directly", exc_info=True)
                with contextlib.suppress(Exception):
                    service.stop()
        else:
            with contextlib.suppress(Exception):
                service.stop()
        shutil.rmtree(profile, ignore_errors=True)


def browser_version(wd) -> str:
    """The running browser's version string ("156.0.7390.54"), or "" if the driver does not say."""
    caps = getattr(wd, "capabilities", None) or {}
    return str(caps.get("browserVersion") or caps.get("version") or "")
