"""Shutdown order: clients closed with 1001, the tailer stopped and joined, database work
drained (bounded), then the lws context destroyed; the process exits 0."""
import signal
import threading
import time

import psycopg

from conftest import unique
from live_client import LiveClient


def test_sigterm_with_database_work_in_flight_exits_cleanly(fresh_server):
    server = fresh_server()
    queue = unique("q")
    assert server.api("POST", "/api/queues", {"id": queue, "name": "Shutdown"})[0] == 200
    status, created = server.api("POST", "/api/interactions", {"callId": unique("call")})
    assert status == 201
    iid = created["id"]
    client = LiveClient(server.ws_url).run_in_background()
    assert client.wait_for(lambda c: c.snapshots >= 1, 10)

    # Another writer holds the interaction's row: the API's transition waits on a database worker.
    holder = psycopg.connect(server.database)
    holder.execute("select 1 from sightline.interactions where id = %s for update", (iid,))
    def blocked_write():
        try:
            server.api("POST", f"/api/interactions/{iid}/transitions", {"to": "queued", "queue": queue})
        except OSError:
            pass    # the server stops under it: no answer is the expected outcome
    threading.Thread(target=blocked_write, daemon=True).start()
    time.sleep(0.5)

    started = time.time()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=20)
    elapsed = time.time() - started
    holder.rollback()
    holder.close()
    assert code == 0, server.log_path.read_text()[-2000:]
    assert elapsed < 12, f"took {elapsed:.1f} s"
    assert client.wait_for(lambda c: c.closed is not None, 5)
    assert client.closed[0] == 1001
    log = server.log_path.read_text()
    assert "database work still running after 5 s" in log
    assert log.rstrip().endswith("stopped") or "stopped" in log.splitlines()[-1]
    server.proc = None
