"""schemathesis against /api/openapi.json: well over 1,000 generated requests (examples, the
coverage phase's edge values and fuzzing) with an admin token, on a server of its own. Every
answer must be in the document (status, content type, headers, body schema), none a 5xx, and the
server alive and healthy throughout."""
import json
import subprocess
import sys

from conftest import HealthWatch, unique

# Fixed so a failure can be replayed (`st run ... --seed`); 50 cases per operation give about
# 1,400 in all within about a minute.
SEED = 1
EXAMPLES = 50


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(isolated_server, tmp_path, capsys):
    server = isolated_server(bootstrap=True)
    queue = unique("q")
    server.add_queue(queue)
    server.add_agent(unique("a"), queues=[queue])
    iid = server.create()
    server.transition(iid, "queued", queue=queue)
    report = tmp_path / "schemathesis.json"
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/api/openapi.json",
               "-H", f"Authorization: Bearer {server.token}",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                           "response_headers_conformance,response_schema_conformance,ignored_auth",
               "--phases", "examples,coverage,fuzzing", "-n", str(EXAMPLES), "--seed", str(SEED),
               # One worker: CPython 3.11 can fail compiling in two threads at once ("AST constructor
               # recursion depth mismatch", inside hypothesis), an error of the tool, not of the server.
               "-w", "1",
               # lws itself closes the connection on %00 in a request target, before any answer
               # (README, "HTTP"): not something the document can describe.
               "--generation-allow-x00", "false",
               "--request-timeout", "20", "--no-color", "--generation-database", "none", "--report", "json", "--report-json-path", str(report)]
    with HealthWatch(server, every=0.5) as health:
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    with capsys.disabled():
        print(f"\nschemathesis: {cases['generated']} cases, {cases['unique_failures']} failures, "
              f"{cases['errored']} errors, seed {SEED}")
    assert cases["generated"] >= 1000, cases
    assert cases["unique_failures"] == 0 and not result["failures"], done.stdout[-6000:]
    assert cases["errored"] == 0 and not result["errors"], done.stdout[-6000:]
    assert result["exit_code"] == 0, done.stdout[-6000:]
    assert server.alive(), server.log_tail()
    health.check(2.0)
