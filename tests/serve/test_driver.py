"""The driver's page's server side: ``parkloop serve`` over https (a certificate made here by
the openssl command), the page and ``GET /v1/me`` there, and the link and QR code that
``parkloop device token --link`` prints. The page itself is driven in tests/app/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from parkloop.serve.driver import CSP
from tests.conftest import run_cli
from tests.serve.conftest import ADMIN_TOKEN, free_port
from tests.test_cli import one_line_error


@dataclass
class Https:
    url: str
    store: Path
    tls: ssl.SSLContext
    """trusts the server's self-signed certificate only"""


def certificate(where: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM), by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command here to make a test certificate")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Https]:
    where = tmp_path_factory.mktemp("https")
    cert, key = certificate(where)
    store, port = where / "store", free_port()
    log = (where / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parkloop", "serve", "--store", str(store), "--port", str(port),
         "--loop-interval", "0", "--workers", "0",  # TLS is the point, not the pipeline
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PARKLOOP_ADMIN_TOKEN": ADMIN_TOKEN})
    served = Https(f"https://127.0.0.1:{port}", store, ssl.create_default_context(cafile=cert))
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (where / "serve.log").read_text()
            try:
                if httpx.get(served.url + "/readyz", verify=served.tls).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (where / "serve.log").read_text()
                time.sleep(0.1)
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_serve_speaks_https_with_the_given_certificate(https: Https) -> None:
    page = httpx.get(https.url + "/app/", verify=https.tls)
    assert page.status_code == 200
    assert "Where is my car?" in page.text
    assert page.headers["content-security-policy"] == CSP  # calls to this server only
    assert CSP.startswith("default-src 'self';")  # fetch() included: no connect-src
    assert httpx.get(https.url + "/app", verify=https.tls).headers["location"] == "/app/"
    leaflet = httpx.get(https.url + "/console/vendor/leaflet/leaflet.js", verify=https.tls)
    assert leaflet.status_code == 200  # the console's copy: the page ships none of its own
    with pytest.raises(httpx.TransportError):  # plain http gets no answer on that port
        httpx.get(https.url.replace("https:", "http:") + "/readyz")


def test_me_names_the_token_s_device_and_nothing_else(https: Https) -> None:
    token = run_cli("device", "token", "phone-1", store=https.store).stdout.strip()

    def me(authorization: str | None) -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        return httpx.get(https.url + "/v1/me", headers=headers, verify=https.tls)

    assert me(f"Bearer {token}").json() == {"device_id": "phone-1"}
    admin = me(f"Bearer {ADMIN_TOKEN}")
    assert (admin.status_code, admin.json()["error"]) == (403, "forbidden")
    for who in (None, "Bearer plk_guess", "Basic abc", "Bearer " + "x" * 600):
        refused = me(who)
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized"), who


def test_the_link_signs_a_phone_in_and_its_qr_code_is_drawn(https: Https) -> None:
    done = run_cli("device", "token", "phone-2", "--link", "https://192.168.1.20:8443/",
                   store=https.store)
    token = done.stdout.strip()
    assert done.stdout == token + "\n"  # stdout: the token only, as without --link
    assert token.startswith("plk_")
    assert f"open on the phone: https://192.168.1.20:8443/app/#token={token}" in done.stderr
    assert "▀" in done.stderr or "▄" in done.stderr  # the QR code, in half blocks
    quiet = run_cli("device", "token", "phone-2", "--link", https.url, "--no-qr", "--json",
                    store=https.store)
    shown = json.loads(quiet.stdout)
    assert shown["link"] == f"{https.url}/app/#token={shown['token']}"
    assert "▀" not in quiet.stderr
    plain = run_cli("device", "token", "phone-2", "--link", "http://192.168.1.20:8000",
                    "--no-qr", store=https.store)
    assert "only with https pages" in plain.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--link", "ftp://host"], "is not a server address"),
    (["--link", "https://"], "is not a server address"),
])
def test_a_bad_link_is_one_line(https: Https, args: list[str], says: str) -> None:
    assert says in one_line_error(run_cli("device", "token", "phone-3", *args,
                                          store=https.store, check=False))


def test_bad_tls_files_are_one_line(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    locked = tmp_path / "locked.pem"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-in", str(key), "-out", str(locked),
                    "-passout", "pass:secret"], check=True, capture_output=True)
    for args, says in ((["--ssl-certfile", str(cert)], "needs both"),
                       (["--ssl-certfile", str(key), "--ssl-keyfile", str(key)],
                        "is not a PEM certificate"),
                       (["--ssl-certfile", str(cert), "--ssl-keyfile", str(cert)],
                        "is not a PEM private key"),
                       (["--ssl-certfile", str(tmp_path / "no.pem"), "--ssl-keyfile", str(key)],
                        "No such file"),
                       (["--ssl-certfile", str(cert), "--ssl-keyfile", str(locked)],
                        "is encrypted")):
        assert says in one_line_error(run_cli("serve", "--port", str(free_port()), *args,
                                              store=tmp_path / "store", check=False)), args
