"""https: forward-secret ciphers only, and HSTS on every response. A real server with a
self-signed certificate; Python's ssl module as the client."""
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, free_port


@pytest.fixture
def tls_server(database, binary, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([binary, "serve", "--database", database, "--listen", f"127.0.0.1:{port}",
                             "--tls-cert", str(cert), "--tls-key", str(key)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError((tmp_path / "server.log").read_text()[-2000:])
            time.sleep(0.2)
    yield port, context
    proc.terminate()
    proc.wait(timeout=15)


def handshake(port, ciphers, version=ssl.TLSVersion.TLSv1_2):
    """The cipher agreed on, or None when the server refused them all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    context.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                return tls.cipher()[0]
    except ssl.SSLError:
        return None


def test_tls_offers_forward_secret_ciphers_only_and_sends_hsts(tls_server):
    port, context = tls_server
    # Static RSA key exchange (no forward secrecy): refused, whatever the bulk cipher.
    for static in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256", "AES128-SHA"):
        assert handshake(port, static) is None, static
    assert handshake(port, "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    # What a client gets when it offers everything: an ECDHE suite (or TLS 1.3).
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            name, version, _ = tls.cipher()
    assert version == "TLSv1.3" or name.startswith("ECDHE-"), (name, version)
    for path in ("/", "/healthz", "/api/board", "/no-such-file.js"):
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=5) as r:
                headers = r.headers
        except urllib.error.HTTPError as e:
            headers = e.headers
        assert headers.get("Strict-Transport-Security", "").startswith("max-age="), (path, dict(headers))
