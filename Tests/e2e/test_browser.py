"""The pages in a real headless Chromium against the real server."""
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from live_client import db_board


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1920,1200"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def wait_until(predicate, timeout=5.0, step=0.05):
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


def open_board(driver, sightline):
    driver.get(sightline.base_url + "/")
    wait_until(lambda: status_text(driver) == "live", 10)


def waiting_on_page(driver, queue):
    return int(driver.find_element(By.CSS_SELECTOR, f"[data-queue='{queue}'] [data-testid=waiting-count]").text)


def test_board_matches_the_api_and_follows_transitions(browser, sightline, scenario):
    callers = [sightline.create() for _ in range(3)]
    for iid in callers:
        sightline.transition(iid, "queued", queue=scenario.queue)
    open_board(browser, sightline)
    assert severe_logs(browser) == []
    api = sightline.board()
    expected = sum(1 for i in api["board"]["interactions"]
                   if i["queue"] == scenario.queue and i["state"] == "queued" and i["transfer"] is None)
    assert expected == 3
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == expected)

    # A transition through the API shows within 1 s.
    sightline.transition(callers[0], "delivery_pending", agent=scenario.ann)
    t0 = time.time()
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == 2, timeout=1.0)
    assert time.time() - t0 < 1.0

    # A hold shows its agent.
    sightline.transition(callers[0], "delivered")
    sightline.transition(callers[0], "held", agent=scenario.ann)
    held_text = wait_until(lambda: browser.find_element(
        By.CSS_SELECTOR, f"[data-testid=held-row][data-interaction='{callers[0]}']").text, 1.0)
    assert scenario.ann in held_text
    wait_until(lambda: "holding" in browser.find_element(
        By.CSS_SELECTOR, f"[data-testid=agent-row][data-agent='{scenario.ann}']").text)
    browser.save_screenshot(str(sightline.output_dir / "board.png"))

    # A completed interaction leaves the board.
    sightline.transition(callers[1], "completed")
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, f"[data-testid=call-row][data-interaction='{callers[1]}']"), 1.0)
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == 1, 1.0)
    assert severe_logs(browser) == []


def test_transfer_draws_the_path_live(browser, sightline, scenario):
    open_board(browser, sightline)
    a = sightline.create()
    sightline.transition(a, "queued", queue=scenario.queue)
    sightline.transition(a, "delivery_pending", agent=scenario.ann)
    sightline.transition(a, "delivered")
    search = browser.find_element(By.CSS_SELECTOR, "[data-testid=path-search]")
    search.clear()
    search.send_keys(str(a), Keys.ENTER)
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")) == 1)
    # The path grows while it is open: a transfer adds a lane and an arrow.
    b = sightline.transfer(a, "agent", scenario.bob)
    sightline.transition(b, "delivery_pending", agent=scenario.bob)
    sightline.transition(b, "delivered")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")) == 2, 3)
    lanes = [e.get_attribute("data-interaction") for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")]
    assert lanes == [str(a), str(b)]
    arrows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-arrow]")
    assert [e.get_attribute("data-status") for e in arrows] == ["succeeded"]
    # A failed transfer is drawn as such.
    c = sightline.transfer(b, "queue", scenario.queue)
    sightline.transition(c, "completed")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-arrow][data-status=failed]")) == 1, 3)
    browser.save_screenshot(str(sightline.output_dir / "caller-path.png"))
    assert severe_logs(browser) == []


def test_wallboard(browser, sightline, scenario):
    browser.get(f"{sightline.base_url}/wallboard?queues={scenario.queue}")
    def tile_text():
        return browser.find_element(By.CSS_SELECTOR, f"[data-testid=wallboard-tile][data-queue='{scenario.queue}']").text

    try:
        wait_until(lambda: "0" in tile_text(), 10)
    except AssertionError:
        raise AssertionError(f"no tile for {scenario.queue}: {browser.find_element(By.ID, 'wall').text!r} "
                             f"{browser.current_url} {browser.get_log('browser')}")
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    wait_until(lambda: tile_text().splitlines()[1] == "1 waiting", 2)
    browser.save_screenshot(str(sightline.output_dir / "wallboard.png"))
    assert severe_logs(browser) == []


def test_reconnects_after_a_server_restart(browser, sightline, scenario):
    open_board(browser, sightline)
    sightline.stop_server()
    wait_until(lambda: "reconnecting" in status_text(browser), 20)
    sightline.start_server()
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    wait_until(lambda: status_text(browser) == "live", 20)
    truth = db_board(sightline)
    waiting = sum(1 for v in truth.values() if v["queue"] == scenario.queue and v["state"] == "queued")
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == waiting, 5)
    rows = "return [...document.querySelectorAll('[data-testid=call-row]')].map(e => Number(e.dataset.interaction))"
    try:
        wait_until(lambda: iid in browser.execute_script(rows), 5)
    except AssertionError:
        raise AssertionError(f"{iid} not in {browser.execute_script(rows)[-5:]}; status {status_text(browser)}")
    # Console errors from the refused connections while the server was down are expected.
