"""The model registry on MLflow: versions and their lineage, the champion, publish, rollback.

Where it lives
    By default inside the store, so no server is needed: MLflow's tracking store and model
    registry in ``<store>/registry/mlflow.db`` (SQLite), run artifacts under
    ``<store>/registry/artifacts``. ``$PARKLOOP_REGISTRY_URI`` (or ``uri=``) points it at any
    MLflow tracking URI instead, e.g. a remote ``http://mlflow.internal:5000``; the artifacts of
    a remote version are then downloaded once to ``<store>/registry/cache/<run_id>``.

What a version is
    One MLflow run in the experiment ``parkloop`` (params, metrics, tags and a whole directory
    of artifacts) and a version of the registered model :data:`MODEL_NAME` whose source is that
    run's artifacts. The run's tags — the lineage: ``rules_version``, ``raw_watermark``,
    ``label_set_hash``, ``spec_name``, ``spec_hash`` — are written on the version too. What a
    model *is* is not this module's business: it stores a directory.

Publish, rollback, audit
    The champion is the MLflow alias ``champion``. Every publish and rollback is appended to
    ``<store>/registry/audit.jsonl`` (one JSON object a line, fsync'd) while an exclusive
    ``fcntl`` lock on that file is held across reading the champion, moving the alias and
    appending; so a CLI and a running server — which holds DuckDB's write lock, hence the audit
    is not in DuckDB — serialise on it (POSIX only). A rollback undoes the latest publish not yet
    undone: after publishing 1, 2, 3, rollbacks give 2, then 1, then an error.

MLflow is imported only by the methods that need it (it takes seconds), with its telemetry
switched off; :meth:`Registry.summary` reads a local SQLite registry directly, so
``parkloop status`` stays fast. Every failure surfaces as a one-line :class:`RegistryError`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

from parkloop.errors import RegistryError, UnknownModelVersion

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_NAME = "parked"
"""the registered model every version belongs to"""
EXPERIMENT = "parkloop"
"""the MLflow experiment holding one run per version"""
CHAMPION = "champion"
"""the alias that marks the published version"""
REGISTRY_URI_ENV = "PARKLOOP_REGISTRY_URI"
"""environment variable naming an MLflow tracking URI to use instead of the store's SQLite"""
REGISTRY_DIR = "registry"
DB_FILE = "mlflow.db"
AUDIT_FILE = "audit.jsonl"

# A location-data service never phones home: MLflow reads this when it is first imported, which
# may be by any module after this one (setting a variable writes nothing anywhere).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

_BATCH = 100  # MLflow accepts at most 100 params (and 1000 metrics) per log_batch request


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version: its lineage tags and metrics, as MLflow holds them."""

    version: str
    created_ms: int
    run_id: str
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    is_champion: bool


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log: who moved the champion, from which version to which, why."""

    at_ms: int
    action: Literal["publish", "rollback"]
    version: str
    previous: str | None
    actor: str
    reason: str


class Registry:
    """The registry of a store (see the module docstring); cheap to create, MLflow on first use."""

    def __init__(self, store_path: Path, uri: str | None = None) -> None:
        self.root = Path(store_path) / REGISTRY_DIR
        self._artifact_root = self.root / "artifacts"
        self.uri = uri or os.environ.get(REGISTRY_URI_ENV) or f"sqlite:///{self.root / DB_FILE}"
        self._db = Path(self.uri.removeprefix("sqlite:///")) if self.uri.startswith(
            "sqlite:///") else None
        self._local = self._db is not None or urlparse(self.uri).scheme in ("", "file")
        self._audit_path = self.root / AUDIT_FILE
        self._mlflow: MlflowClient | None = None

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    @property
    def exists(self) -> bool:
        """False only where a local SQLite registry has not been created yet."""
        return self._db is None or self._db.is_file()

    # --- versions ---------------------------------------------------------------------------

    def register(self, artifact_dir: Path, *, params: Mapping[str, str],
                 metrics: Mapping[str, float], tags: Mapping[str, str]) -> str:
        """Log ``artifact_dir`` with params, metrics and lineage tags as one run and register
        it as a new version of :data:`MODEL_NAME`; returns the version ("1", "2", ...)."""
        artifact_dir = Path(artifact_dir)
        if not artifact_dir.is_dir():
            raise RegistryError(f"cannot register {artifact_dir}: not a directory")
        with self._errors("registering a model version"):
            client = self._client()
            from mlflow.entities import Metric, Param
            run = client.create_run(self._experiment_id(), tags=dict(tags),
                                    run_name=tags.get("spec_name"))
            run_id = run.info.run_id
            try:
                now = int(time.time() * 1000)
                ms = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
                ps = [Param(k, str(v)) for k, v in params.items()]
                for i in range(0, max(len(ms), len(ps)), _BATCH):
                    client.log_batch(run_id, metrics=ms[i:i + _BATCH], params=ps[i:i + _BATCH])
                client.log_artifacts(run_id, str(artifact_dir))
            except BaseException:
                client.set_terminated(run_id, "FAILED")
                raise
            client.set_terminated(run_id)
            self._ensure_model(client)
            mv = client.create_model_version(MODEL_NAME, source=run.info.artifact_uri,
                                             run_id=run_id, tags=dict(tags))
            return str(mv.version)

    def versions(self) -> list[VersionInfo]:
        """Every version of :data:`MODEL_NAME`, oldest first (empty before the first)."""
        if not self.exists:
            return []
        with self._errors("listing model versions"):
            client = self._client()
            champion = self._champion(client)
            out = []
            for mv in self._model_versions(client):
                out.append(VersionInfo(
                    version=str(mv.version), created_ms=int(mv.creation_timestamp or 0),
                    run_id=mv.run_id or "", tags=dict(mv.tags or {}),
                    metrics=_run_metrics(client, mv.run_id),
                    is_champion=str(mv.version) == champion))
            return out

    def champion(self) -> str | None:
        """The published version, or None before the first publish."""
        if not self.exists:
            return None
        with self._errors("reading the champion"):
            return self._champion(self._client())

    def summary(self) -> dict[str, Any]:
        """``{"champion": VERSION or None, "versions": N}``, read straight from a local SQLite
        registry (no MLflow import) so that ``parkloop status`` stays fast."""
        if not self.exists:
            return {"champion": None, "versions": 0}
        if self._db is not None:
            try:
                return _sqlite_summary(self._db)
            except sqlite3.Error:
                pass  # not the schema we know: ask MLflow, which explains what is wrong
        return {"champion": self.champion(), "versions": len(self.versions())}

    def artifacts(self, version: str) -> Path:
        """A local directory holding the artifacts registered as ``version`` (the registry's own
        directory where it is local, else a download cached under the store)."""
        with self._errors(f"finding the artifacts of version {version}"):
            mv = self._model_version(self._client(), version)
            if not mv.source:
                raise RegistryError(f"model version {version} names no artifacts")
            path = _local_path(mv.source)
            if path is not None:
                # a copied or moved store's SQLite still names the old artifact root: prefer
                # the store's own copy, so that a copy does not depend on the original
                parts = path.parts
                for i in range(len(parts) - 1, 0, -1):
                    if parts[i - 1:i + 1] == (REGISTRY_DIR, "artifacts"):
                        own = self._artifact_root.joinpath(*parts[i + 1:])
                        if own.is_dir():
                            return own
                        break
                if path.is_dir():
                    return path
            return self._download(mv.source, mv.run_id or f"v{mv.version}")

    # --- champion: publish, rollback, audit ----------------------------------------------------

    def publish(self, version: str, *, reason: str, actor: str = "cli") -> None:
        """Make ``version`` the champion and append the move to the audit log (publishing the
        champion again changes and records nothing)."""
        version = version.strip()
        with self._errors(f"publishing version {version}"), self._audit_lock() as log:
            client = self._client()
            self._model_version(client, version)
            previous = self._champion(client)
            if previous != version:
                self._move(client, log, AuditRecord(
                    _now_ms(), "publish", version, previous, actor, reason))

    def rollback(self, *, reason: str, actor: str = "cli") -> str:
        """Make the champion before the current one (per the audit log) champion again, record
        it, and return it."""
        with self._errors("rolling back"), self._audit_lock() as log:
            stack = _champions(_read(log, self._audit_path))
            if len(stack) < 2:
                raise RegistryError("nothing to roll back to: " + (
                    f"version {stack[0]} is the first published champion" if stack else
                    "no version has been published yet"))
            client = self._client()
            target = stack[-2]
            self._move(client, log, AuditRecord(
                _now_ms(), "rollback", target, self._champion(client), actor, reason))
            return target

    def audit(self) -> list[AuditRecord]:
        """Every publish and rollback, oldest first."""
        try:
            with open(self._audit_path, encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_SH)
                return _read(f, self._audit_path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RegistryError(f"cannot read the audit log {self._audit_path}: {exc}") from exc

    # --- internals ---------------------------------------------------------------------------

    def _client(self) -> MlflowClient:
        if self._mlflow is None:
            client_class = _import_mlflow()
            if self._db is not None:
                self._db.parent.mkdir(parents=True, exist_ok=True)
            self._mlflow = client_class(tracking_uri=self.uri, registry_uri=self.uri)
        return self._mlflow

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn whatever MLflow, SQLAlchemy or the file system raise into a one-line error."""
        try:
            yield
        except RegistryError:
            raise
        except Exception as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            first = lines[0] if len(lines[0]) <= 200 else lines[0][:197] + "..."
            raise RegistryError(f"model registry {self.uri}: {doing} failed: {first}") from exc

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client()
        location = self._artifact_root.resolve().as_uri() if self._local else None
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None and location is not None and exp.artifact_location != location:
            # the store was copied or moved: keep old runs under another name, new ones inside
            client.rename_experiment(exp.experiment_id, f"{EXPERIMENT}@{exp.experiment_id}")
            exp = None
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(client.create_experiment(EXPERIMENT, artifact_location=location))
        except MlflowException:  # another process created it meanwhile
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
            return str(exp.experiment_id)

    @staticmethod
    def _ensure_model(client: MlflowClient) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(MODEL_NAME)
        except MlflowException:
            try:
                client.create_registered_model(MODEL_NAME)
            except MlflowException:  # another process created it meanwhile
                client.get_registered_model(MODEL_NAME)

    @staticmethod
    def _model_versions(client: MlflowClient) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token = None
        while True:
            page = client.search_model_versions(f"name = '{MODEL_NAME}'", page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda mv: int(mv.version))

    def _model_version(self, client: MlflowClient, version: str) -> ModelVersion:
        found = {str(mv.version): mv for mv in self._model_versions(client)}
        if version not in found:
            known = ", ".join(found) or "none registered yet"
            raise UnknownModelVersion(f"no model version {version!r} (known versions: {known})")
        return found[version]

    @staticmethod
    def _champion(client: MlflowClient) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            aliases = client.get_registered_model(MODEL_NAME).aliases
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        version = (aliases or {}).get(CHAMPION)
        return None if version is None else str(version)

    def _move(self, client: MlflowClient, log: IO[str], record: AuditRecord) -> None:
        """Point the alias at ``record.version`` and append ``record``; undo the move when the
        record cannot be written, so that the log never misses a move."""
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, record.version)
        try:
            _append(log, record)
        except BaseException:
            if record.previous is None:
                client.delete_registered_model_alias(MODEL_NAME, CHAMPION)
            else:
                client.set_registered_model_alias(MODEL_NAME, CHAMPION, record.previous)
            raise

    @contextmanager
    def _audit_lock(self) -> Iterator[IO[str]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._audit_path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield f  # closing the file releases the lock

    def _download(self, source: str, key: str) -> Path:
        from mlflow.artifacts import download_artifacts

        dest = self.root / "cache" / key
        if dest.is_dir():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=dest.parent))
        try:
            got = Path(download_artifacts(artifact_uri=source, dst_path=str(tmp),
                                          tracking_uri=self.uri))
            got.rename(dest)  # atomic: a reader sees no directory or a complete one
        except OSError:
            if not dest.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest


def _import_mlflow() -> type[MlflowClient]:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    import mlflow.telemetry

    if mlflow.telemetry.get_telemetry_client() is not None:  # imported before we could say so
        mlflow.telemetry.set_telemetry_client()  # type: ignore[no-untyped-call]
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines on the CLI's stderr
    return mlflow.MlflowClient


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.metrics)
    except MlflowException:  # the run was deleted in MLflow; the version still stands
        return {}


def _sqlite_summary(db: Path) -> dict[str, Any]:
    """Read the champion and the version count from MLflow's own tables (read-only)."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        champion = con.execute(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
            [MODEL_NAME, CHAMPION]).fetchone()
        (n,) = con.execute(
            "SELECT count(*) FROM model_versions WHERE name = ? "
            "AND current_stage <> 'Deleted_Internal'", [MODEL_NAME]).fetchone()
    finally:
        con.close()
    return {"champion": None if champion is None else str(champion[0]), "versions": int(n)}


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def _champions(records: list[AuditRecord]) -> list[str]:
    """The champions in publish order, each rollback undoing the latest publish."""
    stack: list[str] = []
    for r in records:
        if r.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != r.version:
                stack.append(r.version)
        elif not stack or stack[-1] != r.version:
            stack.append(r.version)
    return stack


def _read(f: IO[str], path: Path) -> list[AuditRecord]:
    f.seek(0)
    records = []
    for no, line in enumerate(f, start=1):
        if not line.endswith("\n"):
            break  # torn by a crash mid-append; the next append cuts it off
        try:
            records.append(AuditRecord(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise RegistryError(f"audit log {path} line {no} is corrupt: {exc}") from exc
    return records


def _append(f: IO[str], record: AuditRecord) -> None:
    f.seek(0)
    text = f.read()
    if text and not text.endswith("\n"):
        f.truncate(text.rfind("\n") + 1)
    f.write(json.dumps(asdict(record)) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _now_ms() -> int:
    return int(time.time() * 1000)
