"""The viewers in a real browser: JupyterLab headless on 127.0.0.1, ``notebooks/viewers_demo.py`` run
in headless Chromium through Selenium; each viewer's slider is moved with the keyboard and its image
must change. Screenshots of the viewers go to a temporary folder, or to ``docs/widgets/<viewer>.png``
(the README shows them) with ``FLARE_UPDATE_DOCS=1``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make setup`` installs them) and selenium (the
``dev`` extra). Without chromium the test is skipped, except in CI (``CI`` set), where it fails.
Every wait is bounded; the server, its kernels and the browser are always shut down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "notebooks" / "viewers_demo.py"
#: Where the screenshots go: the README's ``docs/widgets/`` when ``FLARE_UPDATE_DOCS=1`` (how they
#: are refreshed), else a temporary folder, so a test run leaves the work tree as it was.
DOCS_SHOTS = ROOT / "docs" / "widgets"
VIEWERS = ("registration", "kidney", "segmentation")
SERVER_START_S = 120
KERNEL_READY_S = 120
CELLS_RUN_S = 240
REDRAW_S = 60


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 0.5):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a page still loading raises; keep polling until the deadline
            last_error = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def descendants(pid: int) -> list[int]:
    """Pids of every live descendant of ``pid`` (from /proc; empty where /proc is absent)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM ``proc``'s process group (it was started in a session of its own), wait up to
    ``grace`` s, then SIGKILL the group and every descendant seen before (kernels run in their own
    process groups)."""
    if proc.poll() is not None:
        return
    family = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def require_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver; skips without them, but fails in CI."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    why = (
        f"chromium {'found' if browser else 'not installed'}, chromedriver "
        f"{'found' if driver else 'not installed'}: `make setup` (as root) installs Debian's chromium "
        "and chromium-driver"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the browser test")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    """JupyterLab user settings: every cell attached to the DOM (no windowing), no news or update
    checks (they would ask in a toast over the page)."""
    settings = {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def demo_notebook(folder: Path) -> Path:
    """``notebooks/viewers_demo.py`` as an .ipynb in ``folder``, on the server's own Python kernel."""
    import jupytext

    nb = jupytext.read(DEMO)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)  # else jupytext's contents manager wants the paired .py
    path = folder / "viewers_demo.ipynb"
    jupytext.write(nb, path)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A headless JupyterLab on 127.0.0.1 serving the demo notebook: ``(url, token)``."""
    require_chromium()
    home = tmp_path_factory.mktemp("lab")
    root = home / "root"
    root.mkdir()
    demo_notebook(root)
    write_settings(home / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "MPLCONFIGDIR": str(home / "mpl"),
    }
    log = (home / "server.log").open("w")
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [
        str(jupyter),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited ({server.returncode}):\n{(home / 'server.log').read_text()}")
            req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status == 200

        wait_for("JupyterLab to answer /api/status", up, SERVER_START_S)
        yield url, token, home
    finally:
        kill_tree(server)
        log.close()


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """Headless Chromium driven by Selenium (system chromedriver; nothing downloaded)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium is not installed ({exc}): `make setup` installs the dev extra")

    chromium, chromedriver = require_chromium()
    logs = tmp_path_factory.mktemp("chromium")
    opts = Options()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        "--hide-scrollbars",
        f"--user-data-dir={logs / 'profile'}",
    ):
        opts.add_argument(arg)
    service = Service(executable_path=chromedriver, log_output=str(logs / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        yield driver
    finally:
        family = descendants(service.process.pid) if service.process else []
        with contextlib.suppress(Exception):
            driver.quit()
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


_KERNEL_IDLE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return !!(k && k.connectionStatus === 'connected' && k.status === 'idle');
"""

_CELL_ERRORS = """
try {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) if (o.output_type === 'error') out.push(o.ename + ': ' + o.evalue);
  }
  return out;
} catch (e) { return []; }
"""

_IMAGE_BYTES = """
const done = arguments[arguments.length - 1];
fetch(arguments[0].src).then(r => r.arrayBuffer()).then(buf => {
  const bytes = new Uint8Array(buf); let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  done(btoa(s));
}).catch(e => done('ERROR ' + e));
"""


def image_digest(driver, img) -> str:
    """SHA-256 of the bytes the <img> shows (its blob: URL fetched in the page)."""
    data = driver.execute_async_script(_IMAGE_BYTES, img)
    assert not data.startswith("ERROR"), data
    raw = base64.b64decode(data)
    assert raw.startswith(b"\x89PNG"), "the viewer's image is not a PNG"
    return hashlib.sha256(raw).hexdigest()


def slide_and_shoot(driver, name: str, shots: Path) -> None:
    """Move the ``name`` viewer's slice slider one step with the keyboard, wait for its image to be
    replaced, check the new bytes differ, and save a screenshot of the viewer into ``shots``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from flarelib.paths import atomic_write_bytes

    box = driver.find_element(By.CSS_SELECTOR, f".flare-viewer-{name}")
    img = box.find_element(By.CSS_SELECTOR, "img")
    handle = box.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", box)
    src, digest = img.get_attribute("src"), image_digest(driver, img)
    value = int(float(handle.get_attribute("aria-valuenow")))
    step = -1 if value >= int(float(handle.get_attribute("aria-valuemax"))) else 1
    handle.send_keys(Keys.ARROW_LEFT if step < 0 else Keys.ARROW_RIGHT)
    wait_for(f"the {name} viewer's image to change", lambda: img.get_attribute("src") != src, REDRAW_S)
    new_value = int(float(handle.get_attribute("aria-valuenow")))
    assert new_value == value + step, f"{name}: slider {value} -> {new_value}, expected {value + step}"
    assert image_digest(driver, img) != digest, f"{name}: a new image with the same bytes"
    shot = box.screenshot_as_png
    assert len(shot) > 10_000, f"{name}: screenshot suspiciously small ({len(shot)} bytes)"
    shots.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(shots / f"{name}.png", shot)


def test_viewers_redraw_in_a_real_browser(lab, browser):
    url, token, home = lab
    try:
        shots = DOCS_SHOTS if os.environ.get("FLARE_UPDATE_DOCS") == "1" else home / "screenshots"
        run_and_check(browser, url, token, shots)
    except BaseException:  # pytest.fail raises a BaseException: keep what explains the failure
        with contextlib.suppress(Exception):
            browser.save_screenshot(str(home / "failure.png"))
        log = (home / "server.log").read_text()[-4000:]
        print(f"page screenshot: {home / 'failure.png'}\nJupyterLab log (tail):\n{log}")
        raise


def run_and_check(browser, url: str, token: str, shots: Path) -> None:
    """Open the demo, run all cells, wait for the three viewers, then slide and shoot each."""
    from selenium.webdriver.common.by import By

    t0 = time.monotonic()
    browser.get(f"{url}/lab/tree/viewers_demo.ipynb?token={token}")
    wait_for("the notebook's kernel to be idle", lambda: browser.execute_script(_KERNEL_IDLE), KERNEL_READY_S)
    browser.execute_script("window.jupyterapp.shell.collapseLeft();")
    browser.execute_script("return window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def all_drawn() -> bool:
        errors = browser.execute_script(_CELL_ERRORS)
        if errors:
            pytest.fail(f"the demo notebook raised: {errors}")
        boxes = browser.find_elements(By.CSS_SELECTOR, ".flare-viewer")
        sliders = browser.find_elements(By.CSS_SELECTOR, ".flare-viewer .widget-slider")
        srcs = [i.get_attribute("src") for i in browser.find_elements(By.CSS_SELECTOR, ".flare-viewer img")]
        return len(boxes) == 3 and len(sliders) == 3 and len(srcs) == 3 and all(srcs)

    wait_for("the three viewers with their images and sliders", all_drawn, CELLS_RUN_S)
    print(f"viewers drawn {time.monotonic() - t0:.1f} s after opening the notebook")
    for name in VIEWERS:
        slide_and_shoot(browser, name, shots)
    print(f"browser test body {time.monotonic() - t0:.1f} s")
