"""The model registry on a real MLflow (SQLite in a temporary store): lineage, publish, rollback,
audit, artifacts, and nothing written outside the store."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from parkloop.errors import RegistryError
from parkloop.interpret.registry import AUDIT_FILE, AuditRecord, Registry, _append, _read

LINEAGE = {"rules_version": "default@0123abcd", "raw_watermark": "1767225600000",
           "label_set_hash": "f" * 64, "spec_name": "parked-gbm", "spec_hash": "e" * 64}


def _artifact_dir(root: Path, n: int) -> Path:
    d = root / f"artifacts-{n}"
    (d / "plots").mkdir(parents=True)
    (d / "model.joblib").write_bytes(bytes(range(256)) * n)
    (d / "spec.toml").write_text(f'name = "parked-gbm"\nn = {n}\n')
    (d / "report.md").write_text(f"# version {n}\n")
    (d / "plots" / "pr.png").write_bytes(b"\x89PNG" + bytes([n]))
    return d


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose registry holds versions 1 and 2 (none published), made once: creating an
    MLflow database takes seconds. Made from an empty working directory that must stay empty."""
    root = tmp_path_factory.mktemp("registry")
    cwd = root / "cwd"
    cwd.mkdir()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        registry = Registry(root / "store")
        for n in (1, 2):
            version = registry.register(
                _artifact_dir(root, n), params={"max_depth": str(n + 2), "seed": "7"},
                metrics={"f1": 0.8 + n / 100, "pr_auc": 0.7 + n / 100},
                tags={**LINEAGE, "spec_name": f"parked-gbm-{n}"})
            assert version == str(n)
    finally:
        os.chdir(old)
    assert list(cwd.iterdir()) == []
    return root


@pytest.fixture
def registry(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        Registry]:
    """A fresh copy of the template's store, used from an empty working directory that must
    still be empty afterwards."""
    shutil.copytree(template / "store", tmp_path / "store")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("PARKLOOP_REGISTRY_URI", raising=False)
    yield Registry(tmp_path / "store")
    assert list((tmp_path / "cwd").iterdir()) == [], "the registry wrote into the CWD"


def test_each_version_records_its_lineage_params_and_metrics(registry: Registry) -> None:
    from mlflow import MlflowClient

    versions = registry.versions()
    assert [v.version for v in versions] == ["1", "2"]
    for n, v in enumerate(versions, start=1):
        assert dict(v.tags) == {**LINEAGE, "spec_name": f"parked-gbm-{n}"}
        assert dict(v.metrics) == pytest.approx({"f1": 0.8 + n / 100, "pr_auc": 0.7 + n / 100})
        assert not v.is_champion
        assert v.created_ms > 1_700_000_000_000
        run = MlflowClient(registry.uri).get_run(v.run_id)
        assert run.data.params == {"max_depth": str(n + 2), "seed": "7"}
        assert LINEAGE["rules_version"] == run.data.tags["rules_version"]
    assert versions[0].created_ms <= versions[1].created_ms


def test_artifacts_are_the_files_registered(registry: Registry, template: Path) -> None:
    for n in (1, 2):
        got = registry.artifacts(str(n))
        assert got.is_dir()
        assert _files(got) == _files(template / f"artifacts-{n}")
        # the copy's registry names the template's directory; the copy's own files are served
        assert got.is_relative_to(registry.root)


def test_publish_moves_the_champion_and_rollback_restores_the_previous(
        registry: Registry) -> None:
    assert registry.champion() is None
    registry.publish("1", reason="first model", actor="test")
    assert registry.champion() == "1"
    registry.publish("2", reason="beats 1 on held-out users", actor="loop")
    assert registry.champion() == "2"
    assert [v.is_champion for v in registry.versions()] == [False, True]

    other = Registry(registry.root.parent)  # as another process would see it
    assert other.champion() == "2"
    assert other.summary() == {"champion": "2", "versions": 2}

    assert other.rollback(reason="bad answers in production") == "1"
    assert registry.champion() == "1"
    with pytest.raises(RegistryError, match="version 1 is the first published champion"):
        registry.rollback(reason="again")

    audit = registry.audit()
    assert [(r.action, r.version, r.previous, r.actor, r.reason) for r in audit] == [
        ("publish", "1", None, "test", "first model"),
        ("publish", "2", "1", "loop", "beats 1 on held-out users"),
        ("rollback", "1", "2", "cli", "bad answers in production"),
    ]
    assert [r.at_ms for r in audit] == sorted(r.at_ms for r in audit)


def test_rollbacks_walk_back_through_the_publishes(registry: Registry) -> None:
    for v in ("1", "2", "1", "2"):
        registry.publish(v, reason=f"to {v}")
    registry.publish("2", reason="already champion: changes and records nothing")
    assert len(registry.audit()) == 4
    assert [registry.rollback(reason="undo") for _ in range(3)] == ["1", "2", "1"]
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback(reason="undo")


def test_unknown_version_is_a_one_line_registry_error(registry: Registry) -> None:
    for call in (lambda: registry.publish("7", reason="x"), lambda: registry.artifacts("7")):
        with pytest.raises(RegistryError, match=r"no model version '7' \(known versions: 1, 2\)"):
            call()
    assert registry.champion() is None
    assert registry.audit() == []


def test_concurrent_publishers_are_serialised_by_the_audit_lock(registry: Registry) -> None:
    errors: list[BaseException] = []

    def publisher(version: str) -> None:
        mine = Registry(registry.root.parent)
        try:
            for i in range(4):
                mine.publish(version, reason=f"round {i}")
                mine.publish("2" if version == "1" else "1", reason=f"round {i} back")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(v,)) for v in ("1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    audit = registry.audit()
    assert audit, "no publish recorded"
    # each record's `previous` is the version the record before it published: no lost update
    assert [r.previous for r in audit] == [None, *(r.version for r in audit[:-1])]
    assert registry.champion() == audit[-1].version


def test_a_copied_store_registers_into_its_own_directory(registry: Registry,
                                                         tmp_path: Path) -> None:
    version = registry.register(_artifact_dir(tmp_path, 3), params={}, metrics={"f1": 0.9},
                                tags=LINEAGE)
    assert version == "3"
    assert registry.artifacts("3").is_relative_to(registry.root)
    assert _files(registry.artifacts("3")) == _files(tmp_path / "artifacts-3")
    assert [v.version for v in registry.versions()] == ["1", "2", "3"]


def test_remote_artifacts_are_downloaded_once_into_the_store(registry: Registry,
                                                             template: Path) -> None:
    source = (template / "artifacts-1").as_uri()
    got = registry._download(source, "run-abc")
    assert got == registry.root / "cache" / "run-abc"
    assert _files(got) == _files(template / "artifacts-1")
    assert registry._download("file:///nonexistent", "run-abc") == got  # cached
    assert [p.name for p in got.parent.iterdir()] == ["run-abc"]  # no temporary left


def test_telemetry_is_off(registry: Registry) -> None:
    import mlflow.telemetry

    registry.champion()
    assert mlflow.telemetry.get_telemetry_client() is None
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_an_empty_store_has_no_versions_and_creates_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "store")
    assert registry.versions() == []
    assert registry.champion() is None
    assert registry.audit() == []
    assert registry.summary() == {"champion": None, "versions": 0}
    assert not (tmp_path / "store").exists()
    with pytest.raises(RegistryError, match="no version has been published yet"):
        registry.rollback(reason="x")


def test_registering_something_other_than_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"x")
    with pytest.raises(RegistryError, match="not a directory"):
        Registry(tmp_path / "store").register(tmp_path / "model.joblib", params={}, metrics={},
                                              tags={})


def test_a_corrupt_registry_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "store" / "registry" / "mlflow.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not an SQLite database " * 100)
    registry = Registry(tmp_path / "store")
    for call in (registry.versions, registry.champion, registry.summary,
                 lambda: registry.publish("1", reason="x")):
        with pytest.raises(RegistryError) as info:
            call()
        assert len(str(info.value).splitlines()) == 1
        assert "not a database" in str(info.value)


def test_a_corrupt_audit_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "store" / "registry" / AUDIT_FILE
    path.parent.mkdir(parents=True)
    path.write_text('{"at_ms": 1}\n')
    with pytest.raises(RegistryError, match=r"audit.jsonl line 1 is corrupt"):
        Registry(tmp_path / "store").audit()


def test_a_torn_audit_line_is_ignored_then_cut_off(tmp_path: Path) -> None:
    path = tmp_path / AUDIT_FILE
    first = AuditRecord(1, "publish", "1", None, "cli", "a")
    second = AuditRecord(2, "publish", "2", "1", "cli", "b")
    with open(path, "a+", encoding="utf-8") as f:
        _append(f, first)
        f.write('{"at_ms": 2, "act')  # a writer died mid-line
        f.flush()
        assert _read(f, path) == [first]
        _append(f, second)
        assert _read(f, path) == [first, second]
    assert path.read_text().count("\n") == 2
