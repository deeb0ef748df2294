"""Pages of another site try to write through the visitor's browser: a form post and a no-cors
fetch, in headless Chromium, against the server as scripts/run starts it (no token: this
machine's clients only, which is exactly what a page in a local browser is)."""
import functools
import http.server
import threading
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from conftest import free_port, unique

FORM = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}" enctype="text/plain">
<input name='{{"callId":"{call}' value='"}}'>
</form>
<script>document.getElementById("f").submit();</script>
</body></html>"""

FETCH = """<!doctype html><html><head><title>waiting</title></head><body><script>
fetch("{target}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                   body: JSON.stringify({{callId: "{call}"}})}})
  .then(() => {{ document.title = "sent"; }}, (e) => {{ document.title = "failed " + e; }});
</script></body></html>"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def other_site(tmp_path):
    """Another origin (another port of this machine) serving files of tmp_path."""
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


def count(server, call_id):
    return server.db_query("select count(*) from sightline.interactions where call_id = %s", (call_id,))[0][0]


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_cross_origin_form_post_and_a_no_cors_fetch_change_nothing(browser, sightline, other_site):
    folder, origin = other_site
    target = f"{sightline.base_url}/api/interactions"
    form_call, fetch_call, own_call = unique("form"), unique("nocors"), unique("own")
    (folder / "form.html").write_text(FORM.format(target=target, call=form_call))
    (folder / "fetch.html").write_text(FETCH.format(target=target, call=fetch_call))

    browser.get(f"{origin}/fetch.html")
    assert wait_until(lambda: browser.title != "waiting"), "the no-cors fetch never settled"
    assert browser.title == "sent", browser.title      # sent (an opaque answer): it did reach the server

    browser.get(f"{origin}/form.html")
    # The browser follows the post to the server's answer: proof the request arrived, and why it
    # was refused.
    assert wait_until(lambda: "origin_not_allowed" in browser.page_source), browser.page_source[:500]

    # The control: the server's own page writes through the same browser.
    browser.get(sightline.base_url + "/")
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch("/api/interactions", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify({callId: arguments[0]})})
          .then((r) => done(r.status), (e) => done(String(e)));""", own_call)
    assert status == 201
    assert count(sightline, own_call) == 1
    # text/plain form encoding sends name=value: the body is {"callId":"<form_call>="}, valid JSON.
    assert count(sightline, form_call + "=") == 0 and count(sightline, fetch_call) == 0
