"""Device and admin tokens: stored only as digests, replaced on issue, seen across processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from parkloop.errors import InvalidBatch, ParkloopError, RejectedInput, StoreNotFound
from parkloop.serve.tokens import (
    ADMIN_TOKEN_ENV,
    AUTH_FILE,
    DeviceAlreadyRegistered,
    TokenBook,
    token_digest,
)
from parkloop.store import Store
from tests.conftest import run_cli
from tests.test_cli import one_line_error


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    Store.create(path).close()
    return path


@pytest.fixture
def book(store: Path) -> Iterator[TokenBook]:
    with TokenBook(store) as b:
        yield b


def _auth_bytes(store: Path) -> bytes:
    """Everything SQLite wrote: the database and its WAL (and shared-memory index)."""
    return b"".join(p.read_bytes() for p in sorted(store.glob(AUTH_FILE + "*")))


def test_tokens_are_never_stored_in_clear(store: Path, book: TokenBook) -> None:
    tokens = [book.issue("phone-1"), book.register("phone-2"), book.issue("phone-1")]
    admin = book.ensure_admin(env={})
    assert admin is not None
    data = _auth_bytes(store)
    for token in [*tokens, admin]:
        assert token.startswith("plk_")
        assert len(token) == 4 + 43
        assert token.encode() not in data
        assert token[4:].encode() not in data
        assert token[4:20].encode() not in data
    assert token_digest(tokens[2]).hex().encode() in data  # what is stored is the digest


def test_issue_replaces_the_old_token(book: TokenBook) -> None:
    old = book.issue("phone-1")
    new = book.issue("phone-1")
    assert old != new
    assert book.device_for(new) == "phone-1"
    assert book.device_for(old) is None
    assert book.snapshot() == {token_digest(new): "phone-1"}
    assert [d.device_id for d in book.devices()] == ["phone-1"]


def test_register_refuses_a_device_that_has_a_token(book: TokenBook) -> None:
    token = book.register("phone-1")
    with pytest.raises(DeviceAlreadyRegistered, match="already registered") as caught:
        book.register("phone-1")
    assert isinstance(caught.value, ParkloopError)
    assert caught.value.device_id == "phone-1"
    assert "\n" not in str(caught.value)
    assert book.device_for(token) == "phone-1", "a refused register leaves the token alone"
    assert book.device_for(book.issue("phone-1")) == "phone-1"
    assert book.device_for(token) is None


def test_unknown_empty_and_revoked_tokens_map_to_nothing(book: TokenBook) -> None:
    token = book.issue("phone-1")
    for guess in ("", "plk_", "plk_nothing", token[:-1], token + "x", token.upper()):
        assert book.device_for(guess) is None
        assert not book.is_admin(guess)
    assert book.revoke("phone-1")
    assert not book.revoke("phone-1")
    assert book.device_for(token) is None
    assert book.snapshot() == {}


@pytest.mark.parametrize("device_id", ["", "-dash-first", "has space", "x" * 129, "a/b"])
def test_bad_device_ids_are_refused(book: TokenBook, device_id: str) -> None:
    with pytest.raises(InvalidBatch, match="device_id"):
        book.issue(device_id)
    with pytest.raises(InvalidBatch):
        book.register(device_id)
    assert book.devices() == []


def test_a_missing_store_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound):
        TokenBook(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_admin_from_the_environment_writes_nothing(store: Path, book: TokenBook) -> None:
    secret = "an-admin-secret-of-some-length"
    assert book.ensure_admin(env={ADMIN_TOKEN_ENV: secret}) is None
    assert book.is_admin(secret)
    assert not book.is_admin(secret + "x")
    assert not book.is_admin("")
    assert secret.encode() not in _auth_bytes(store)
    with TokenBook(store) as other:  # nothing stored: a start without the variable generates
        assert other.ensure_admin(env={}) is not None
    with pytest.raises(RejectedInput, match=ADMIN_TOKEN_ENV):
        book.ensure_admin(env={ADMIN_TOKEN_ENV: "short"})


def test_a_generated_admin_token_is_returned_once(store: Path, book: TokenBook) -> None:
    first = book.ensure_admin(env={})
    assert first is not None
    assert first.startswith("plk_")
    assert book.ensure_admin(env={}) is None
    assert book.is_admin(first)
    with TokenBook(store) as later:  # a later start: the stored digest still holds
        assert later.ensure_admin(env={}) is None
        assert later.is_admin(first)
        assert not later.is_admin(book.issue("phone-1"))
    assert book.device_for(first) is None, "the admin token is not a device token"
    snapshot = book.snapshot()
    assert set(snapshot.values()) == {"phone-1"}
    assert token_digest(first) not in snapshot


def test_changed_sees_another_instance_issue(store: Path, book: TokenBook) -> None:
    assert book.changed(), "before the first snapshot"
    assert book.snapshot() == {}
    assert not book.changed()
    with TokenBook(store) as cli:
        token = cli.issue("phone-1")
    assert book.changed()
    assert book.snapshot() == {token_digest(token): "phone-1"}
    assert not book.changed()
    book.issue("phone-2")  # its own writes count too
    assert book.changed()
    book.snapshot()
    assert not book.changed()


def test_threads_share_one_book(book: TokenBook) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                token = book.issue(f"phone-{n}-{i}")
                assert book.device_for(token) == f"phone-{n}-{i}"
                book.changed()
                book.snapshot()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(book.snapshot()) == 8 * 20


def test_cli_device_token_end_to_end(store: Path) -> None:
    listed = run_cli("device", "list", "--json", store=store)
    assert json.loads(listed.stdout) == []
    assert not (store / AUTH_FILE).exists(), "listing must not create the token file"

    first = run_cli("device", "token", "phone-1", store=store)
    token = first.stdout.strip()
    assert first.stdout == token + "\n", "only the token on stdout"
    assert token.startswith("plk_")
    assert "replaces any earlier" in first.stderr
    assert len(first.stderr.strip().splitlines()) == 1

    again = json.loads(run_cli("device", "token", "phone-1", "--json", store=store).stdout)
    assert again["device_id"] == "phone-1"
    assert again["token"] != token
    with TokenBook(store) as book:
        assert book.device_for(again["token"]) == "phone-1"
        assert book.device_for(token) is None

    devices = json.loads(run_cli("device", "list", "--json", store=store).stdout)
    assert [d["device_id"] for d in devices] == ["phone-1"]
    assert devices[0]["issued_at"].endswith("Z")
    table = run_cli("device", "list", store=store).stdout
    assert "phone-1" in table
    assert again["token"] not in table
    assert token_digest(again["token"]).hex()[:8] not in table


def test_cli_device_token_bad_input_one_line(store: Path, tmp_path: Path) -> None:
    bad = run_cli("device", "token", "has space", store=store, check=False)
    assert bad.returncode == 1
    assert "device_id 'has space' is not valid" in one_line_error(bad)
    assert bad.stdout == ""
    missing = run_cli("device", "token", "phone-1", store=tmp_path / "nope", check=False)
    assert missing.returncode == 1
    assert "no parkloop store" in one_line_error(missing)
    assert not (tmp_path / "nope").exists()


def test_cli_device_token_works_while_a_server_holds_the_store(store: Path) -> None:
    with Store.create(store), TokenBook(store) as server:  # as `parkloop serve` holds them
        server.snapshot()
        proc = run_cli("device", "token", "phone-1", store=store, process=True)
        token = proc.stdout.strip()
        assert server.changed()
        assert server.snapshot() == {token_digest(token): "phone-1"}
        listed = json.loads(run_cli("device", "list", "--json", store=store,
                                    process=True).stdout)
        assert [d["device_id"] for d in listed] == ["phone-1"]
