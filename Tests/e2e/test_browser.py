"""The board, the caller path and the wallboard in a real headless Chromium against the real
server. Screenshots of each view land in test-output/screens/."""
import datetime
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from browser_support import (axe_violations, chromium, open_board, screenshot, severe_logs, status_text,
                             viewport, wait_until)
from live_client import db_board


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def waiting_on_page(driver, queue):
    return int(driver.find_element(By.CSS_SELECTOR, f"[data-testid=queue-tile][data-queue='{queue}'] [data-testid=waiting-count]").text)


def tile(driver, queue):
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid=queue-tile][data-queue='{queue}']")


def only_queue(driver, queue):
    """Filters the agents and the interactions tables to one queue (they are windowed: a row
    far down a long table is not in the page)."""
    for testid in ("agents-queue", "calls-queue"):
        select = wait_until(lambda: Select(driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")))
        wait_until(lambda: any(o.get_attribute("value") == queue for o in select.options))
        select.select_by_value(queue)


def ago(seconds):
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)).isoformat()


def test_board_matches_the_api_and_follows_transitions(browser, sightline, scenario):
    callers = [sightline.create() for _ in range(3)]
    for iid in callers:
        sightline.transition(iid, "queued", queue=scenario.queue)
    open_board(browser, sightline)
    only_queue(browser, scenario.queue)
    assert severe_logs(browser) == []
    api = sightline.board()
    expected = sum(1 for i in api["board"]["interactions"]
                   if i["queue"] == scenario.queue and i["state"] == "queued" and i["transfer"] is None)
    assert expected == 3
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == expected)

    # A transition through the API shows (how fast is measured by scripts/bench page, not here).
    sightline.transition(callers[0], "delivery_pending", agent=scenario.ann)
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == 2, timeout=10)

    # A hold shows its agent.
    sightline.transition(callers[0], "delivered")
    sightline.transition(callers[0], "held", agent=scenario.ann)
    held_text = wait_until(lambda: browser.find_element(
        By.CSS_SELECTOR, f"[data-testid=held-row][data-interaction='{callers[0]}']").text, 1.0)
    assert scenario.ann in held_text
    wait_until(lambda: "holding" in browser.find_element(
        By.CSS_SELECTOR, f"[data-testid=agent-row][data-agent='{scenario.ann}']").text)
    screenshot(browser, sightline, "board.png")

    # A completed interaction leaves the board.
    row = f"[data-testid=call-row][data-interaction='{callers[1]}']"
    assert browser.find_elements(By.CSS_SELECTOR, row)
    sightline.transition(callers[1], "completed")
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, f"[data-testid=call-row][data-interaction='{callers[1]}']"), 10)
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == 1, 10)
    assert severe_logs(browser) == []


def test_a_queue_breaching_its_service_level_turns_its_tile_to_warning_then_alarm(browser, sightline):
    tag = str(time.time_ns())[-8:]
    q = f"sl-{tag}"
    sightline.add_queue(q, f"Breach {tag}", service_level_seconds=10, waitWarningSeconds=3, waitAlarmSeconds=6,
                        serviceLevelTargetPercent=80)
    agent = f"agent-sl-{tag}"
    sightline.add_agent(agent, f"Ines {tag}", [q])
    wait_until(lambda: any(a["id"] == agent for a in sightline.board()["board"]["agents"]), 10)
    open_board(browser, sightline)
    wait_until(lambda: tile(browser, q).get_attribute("data-level") == "ok")
    # Two callers answered after 40 s of waiting (service level 10 s), one within it: 33% < 80%.
    for waited in (40, 40, 2):
        iid = sightline.create(at=ago(120))
        sightline.transition(iid, "queued", queue=q, at=ago(100))
        sightline.transition(iid, "delivery_pending", agent=agent, at=ago(100 - waited))
        sightline.transition(iid, "delivered", at=ago(100 - waited))
        sightline.transition(iid, "after_call_work", at=ago(20))
        sightline.transition(iid, "completed")
    def today():
        """The queue's figures of today as PostgreSQL counted them (the board's FIGURES)."""
        figures = sightline.board()["board"]["figures"] or {"queues": {}}
        return figures["queues"].get(q, {}).get("today") or {}
    wait_until(lambda: today().get("answered") == 3, 10)
    assert round(today()["serviceLevelPercent"]) == 33, today()
    wait_until(lambda: tile(browser, q).get_attribute("data-level") == "warn", 10)
    t = tile(browser, q)
    assert "Warning" in t.find_element(By.CSS_SELECTOR, "[data-testid=queue-level]").text
    assert "service level under target 80%" in t.find_element(By.CSS_SELECTOR, "[data-testid=queue-why]").text
    assert "33%" in t.find_element(By.CSS_SELECTOR, "[data-testid=service-level]").text
    # A caller waiting past the queue's alarm threshold makes it an alarm, by text as well.
    waiting = sightline.create()
    sightline.transition(waiting, "queued", queue=q)
    wait_until(lambda: tile(browser, q).get_attribute("data-level") == "alarm", 12)
    assert "Alarm" in tile(browser, q).find_element(By.CSS_SELECTOR, "[data-testid=queue-level]").text
    browser.execute_script("arguments[0].scrollIntoView()", tile(browser, q))
    screenshot(browser, sightline, "board-queue-alarm.png")
    # Drill-down: the tile opens the queue's waiting callers, agents and figures.
    tile(browser, q).find_element(By.CSS_SELECTOR, "[data-testid=queue-open]").click()
    detail = wait_until(lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=queue-detail]"))
    wait_until(lambda: detail.is_displayed())
    rows = detail.find_elements(By.CSS_SELECTOR, "[data-testid=waiting-caller]")
    assert [r.get_attribute("data-interaction") for r in rows] == [str(waiting)]
    assert f"Ines {tag}" in detail.text, browser.execute_script(
        "return JSON.stringify([...window.sightline.state.agents.values()].filter(a => a.id === arguments[0]))", agent)
    assert "33%" in detail.find_element(By.CSS_SELECTOR, "[data-testid=detail-figures]").text
    screenshot(browser, sightline, "board-drill-down.png")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait_until(lambda: not detail.is_displayed())
    sightline.transition(waiting, "completed")
    assert severe_logs(browser) == []


def test_focus_stays_on_a_focused_link_across_ticks_and_updates(browser, sightline, scenario):
    open_board(browser, sightline)
    only_queue(browser, scenario.queue)
    mine = sightline.create()
    sightline.transition(mine, "queued", queue=scenario.queue)
    other = sightline.create()
    link_css = f"[data-testid=call-row][data-interaction='{mine}'] a[data-open]"
    link = wait_until(lambda: browser.find_element(By.CSS_SELECTOR, link_css))
    browser.execute_script("arguments[0].focus()", link)
    focused = "return document.activeElement && document.activeElement.dataset.open"
    assert browser.execute_script(focused) == str(mine)
    time.sleep(2.5)                                     # a few 1-second ticks
    assert browser.execute_script(focused) == str(mine)
    # Updates to other rows and to this very row keep the focus where it is.
    sightline.transition(other, "queued", queue=scenario.queue)
    sightline.transition(mine, "delivery_pending", agent=scenario.bob)
    wait_until(lambda: "Ringing" in browser.find_element(By.CSS_SELECTOR, f"[data-testid=call-row][data-interaction='{mine}']").text, 10)
    sightline.transition(other, "completed")
    time.sleep(1.5)
    assert browser.execute_script(focused) == str(mine)
    for iid in (mine,):
        sightline.transition(iid, "completed")


def test_transfer_draws_the_path_live(browser, sightline, scenario):
    open_board(browser, sightline)
    call_id = f"Call-MiXeD-{scenario.tag}"
    search = browser.find_element(By.CSS_SELECTOR, "[data-testid=path-search]")
    search.clear()
    # By call id, exactly as written, typed before the call reaches the board (as when the live
    # stream runs behind on a busy server): the search waits for it.
    search.send_keys(call_id, Keys.ENTER)
    wait_until(lambda: "Looking for call id" in browser.find_element(By.ID, "path").text, 10)
    a = sightline.create(call_id=call_id)
    sightline.transition(a, "queued", queue=scenario.queue)
    sightline.transition(a, "delivery_pending", agent=scenario.ann)
    sightline.transition(a, "delivered")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")) == 1, 20)
    wait_until(lambda: "Talking" in browser.find_element(By.ID, "path").get_attribute("textContent"), 10)
    assert call_id in browser.find_element(By.ID, "path-title").text     # never upper-cased
    # The path grows while it is open: a transfer adds a lane and an arrow, and the original's
    # lane reads "transferring to" its target while the transfer is in progress.
    b = sightline.transfer(a, "agent", scenario.bob)
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")) == 2, 10)
    original = browser.find_element(By.CSS_SELECTOR, f"[data-testid=path-lane][data-interaction='{a}']")
    wait_until(lambda: any(f"transferring to Bob {scenario.tag}" in e.get_attribute("textContent")
                           for e in original.find_elements(By.CSS_SELECTOR, "[data-testid=span-label], title")), 10)
    sightline.transition(b, "delivery_pending", agent=scenario.bob)
    sightline.transition(b, "delivered")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-arrow][data-status=succeeded]"), 10)
    lanes = [e.get_attribute("data-interaction") for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]")]
    assert lanes == [str(a), str(b)]
    # A failed transfer is drawn as such, with when and why its leg ended.
    c = sightline.transfer(b, "queue", scenario.queue)
    sightline.transition(c, "completed")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-arrow][data-status=failed]")) == 1, 10)
    failed = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-link]") if "failed" in e.text]
    assert failed and f"the new leg ended in Queued · Queue {scenario.tag}" in failed[0], failed    # names as written
    # Span labels stay inside their spans; the axis has ticks.
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-tick]")
    overflow = browser.execute_script("""
        return [...document.querySelectorAll('[data-testid=span-label]')].filter(t => {
          const box = t.closest('svg.span-clip').getBoundingClientRect(), r = t.getBoundingClientRect();
          const shown = Math.min(r.right, box.right) - Math.max(r.left, box.left);
          return shown > box.width + 1; }).length""")
    assert overflow == 0
    browser.execute_script("document.getElementById('path-panel').scrollIntoView()")
    screenshot(browser, sightline, "caller-path.png")
    # Escape closes the path panel.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait_until(lambda: not browser.find_element(By.ID, "path-panel").is_displayed())
    assert severe_logs(browser) == []


def test_the_board_the_path_and_the_wallboard_have_no_serious_accessibility_violation(browser, sightline, scenario):
    a = sightline.create()
    sightline.transition(a, "queued", queue=scenario.queue)
    sightline.transition(a, "delivery_pending", agent=scenario.ann)
    sightline.transition(a, "delivered")
    sightline.transition(a, "held", agent=scenario.ann)
    open_board(browser, sightline)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f"[data-testid=held-row][data-interaction='{a}']"))
    assert axe_violations(browser) == []
    search = browser.find_element(By.CSS_SELECTOR, "[data-testid=path-search]")
    search.clear()
    search.send_keys(str(a), Keys.ENTER)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=path-lane]"))
    tile(browser, scenario.queue).find_element(By.CSS_SELECTOR, "[data-testid=queue-open]").click()
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=queue-detail]").is_displayed())
    assert axe_violations(browser) == []
    browser.get(f"{sightline.base_url}/wallboard")
    wait_until(lambda: status_text(browser) == "live", 10)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=wallboard-tile]"))
    assert axe_violations(browser) == []
    sightline.transition(a, "delivered", agent=scenario.ann)
    sightline.transition(a, "after_call_work")
    sightline.transition(a, "completed")


def test_an_alert_of_the_server_shows_in_the_alert_panel_and_leaves_when_resolved(browser, sightline):
    tag = str(time.time_ns())[-8:]
    q = f"al-{tag}"
    sightline.add_queue(q, f"Alerting {tag}", waitWarningSeconds=1, waitAlarmSeconds=2)
    open_board(browser, sightline)
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=q)
    css = f"[data-testid=alert][data-rule=longest_wait][data-queue='{q}']"
    item = wait_until(lambda: browser.find_element(By.CSS_SELECTOR, css), 15)
    assert item.text.startswith("✖ Critical since ") and f"Alerting {tag}" in item.text, item.text
    assert not browser.find_element(By.CSS_SELECTOR, "[data-testid=alerts-empty]").is_displayed()
    browser.execute_script("arguments[0].scrollIntoView()", item)
    screenshot(browser, sightline, "board-alert.png")
    sightline.transition(iid, "completed")
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, css), 20)


def test_usable_at_390_px(browser, sightline, scenario):
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    try:
        viewport(browser, 390, 844)
        open_board(browser, sightline)
        wait_until(lambda: waiting_on_page(browser, scenario.queue) >= 1)
        sideways = browser.execute_script("return document.documentElement.scrollWidth - innerWidth")
        assert sideways <= 0, f"the page scrolls sideways by {sideways}px"
        spill = browser.execute_script("""
            return [...document.querySelectorAll('.panel')].filter(p => !p.hidden && p.getBoundingClientRect().right > innerWidth + 0.5)
              .map(p => p.className)""")
        assert spill == []
        screenshot(browser, sightline, "board-390px.png")
    finally:
        browser.set_window_size(1920, 1200)
        sightline.transition(iid, "completed")


def test_wallboard(browser, sightline, scenario):
    browser.get(f"{sightline.base_url}/wallboard?queues={scenario.queue}")

    def waiting():
        return browser.find_element(By.CSS_SELECTOR, f"[data-testid=wallboard-tile][data-queue='{scenario.queue}'] [data-testid=wall-waiting]").text

    try:
        wait_until(lambda: waiting() == "0", 10)
    except AssertionError:
        raise AssertionError(f"no tile for {scenario.queue}: {browser.find_element(By.ID, 'wall').text!r} "
                             f"{browser.current_url} {browser.get_log('browser')}")
    browser.get_log("browser")      # what the previous page logged
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    wait_until(lambda: waiting() == "1", 10)
    screenshot(browser, sightline, "wallboard-one-queue.png")
    assert severe_logs(browser) == []
    sightline.transition(iid, "completed")


def test_reconnects_after_a_server_restart(browser, sightline, scenario):
    open_board(browser, sightline)
    sightline.stop_server()
    wait_until(lambda: "reconnecting" in status_text(browser), 20)
    sightline.start_server()
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    wait_until(lambda: status_text(browser) == "live", 20)
    only_queue(browser, scenario.queue)
    truth = db_board(sightline)
    waiting = sum(1 for v in truth.values() if v["queue"] == scenario.queue and v["state"] == "queued")
    wait_until(lambda: waiting_on_page(browser, scenario.queue) == waiting, 5)
    rows = "return [...document.querySelectorAll('[data-testid=call-row]')].map(e => Number(e.dataset.interaction))"
    try:
        wait_until(lambda: iid in browser.execute_script(rows), 5)
    except AssertionError:
        raise AssertionError(f"{iid} not in {browser.execute_script(rows)[-5:]}; status {status_text(browser)}")
    # Console errors from the refused connections while the server was down are expected.


def test_the_alerts_panel_shows_a_queue_breach_as_it_fires_and_after_a_reload(browser, sightline):
    q = f"alerts-{int(time.time() * 1000)}"
    sightline.add_queue(q, f"Queue {q}", waitAlarmSeconds=1)
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=q)
    open_board(browser, sightline)

    def listed():
        items = browser.find_elements(By.CSS_SELECTOR, "[data-testid=alerts] li")
        return [li.text for li in items if f"Queue {q}" in li.text and "waited" in li.text]
    assert wait_until(listed, 10)
    assert not browser.find_element(By.ID, "alerts-empty").is_displayed()
    # A page opened later gets the firing alert from its snapshot.
    browser.refresh()
    wait_until(lambda: status_text(browser) == "live", 10)
    assert wait_until(listed, 5)
    sightline.transition(iid, "completed")
    assert severe_logs(browser) == []
