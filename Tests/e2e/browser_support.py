"""Headless Chromium for the page tests: the driver, waiting, screenshots, axe-core and element
geometry."""
import json
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def chromium(width=1920, height=1200):
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}",
                "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def viewport(driver, width, height):
    """Resizes the window so that the page's viewport (not the window) is width x height."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [innerWidth, innerHeight]")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    return driver.execute_script("return [innerWidth, innerHeight]")


def wait_until(predicate, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # element not there yet
            last = e
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s (last: {last!r})")


def severe_logs(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def status_text(driver):
    return driver.find_element(By.CSS_SELECTOR, "[data-testid=connection-status]").text


def open_board(driver, sightline, query=""):
    driver.get(sightline.base_url + "/" + query)
    wait_until(lambda: status_text(driver) == "live", 10)
    driver.get_log("browser")       # what the previous page logged (e.g. a request cut by leaving it)


def screenshot(driver, sightline, name):
    path = sightline.output_dir / "screens" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def axe_violations(driver, impacts=("serious", "critical")):
    """axe-core (bundled by axe-selenium-python) run on the page as it is now: the violations of
    the given impacts, each as (rule id, impact, help, first offending nodes)."""
    from axe_selenium_python import Axe
    axe = Axe(driver)
    driver.set_script_timeout(120)          # axe on a full board takes seconds on a busy machine
    axe.inject()
    result = axe.run()
    found = []
    for v in result["violations"]:
        if v["impact"] in impacts:
            found.append((v["id"], v["impact"], v["help"], [n["html"][:160] for n in v["nodes"][:3]]))
    return found


def rects(driver, css):
    """The client rectangles of every element matching css: [{left, top, right, bottom, ...}]."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => {const r = e.getBoundingClientRect();"
        " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height,"
        " text: e.textContent, clipped: e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1}})", css)


def inside(inner, outer, slack=0.5):
    return (inner["left"] >= outer["left"] - slack and inner["top"] >= outer["top"] - slack
            and inner["right"] <= outer["right"] + slack and inner["bottom"] <= outer["bottom"] + slack)


def overlap(a, b, slack=0.5):
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > slack
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > slack)


def run_module(driver, source, timeout=10):
    """Runs an async JavaScript function body in the page (it may `await import("/x.js")`) and
    returns what it returns (JSON-serialisable)."""
    driver.set_script_timeout(timeout)
    script = ("const done = arguments[arguments.length - 1];"
              "(async () => { " + source + " })().then(v => done(JSON.stringify({ok: v})),"
              " e => done(JSON.stringify({error: String(e && e.stack || e)})));")
    out = json.loads(driver.execute_async_script(script))
    if "error" in out:
        raise AssertionError(out["error"])
    return out.get("ok")
