"""The history database's tables, its schema version and the migrations between versions.

One schema, versioned in the ``meta`` table (``key = "schema_version"``). Version 1 held runs and
their row-level metrics; version 2 adds the suite hash of each run (``runs.suite_hash``) and the
per-image values (``per_image``). :func:`open_engine` creates a new database at the current
version, migrates an older one in one transaction, and refuses a newer one (a ``UserError``: the
database was written by a newer unetgan-bench and this one cannot know what it means).

The database is SQLite by default; any SQLAlchemy URL (e.g. ``postgresql://host/db``) serves a
shared history for a team. Only SQLite is tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from unetgan_bench.bench.history import DEFAULT_DB
from unetgan_core.errors import UserError
from unetgan_core.hashing import config_hash

SCHEMA_VERSION = 2
METADATA = sa.MetaData()
META = sa.Table(
    "meta",
    METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
RUNS = sa.Table(
    "runs",
    METADATA,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    # SHA-256 of results.jsonl and manifest.json: the same run folder is recorded once.
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("run_dir", sa.Text, nullable=False),
    sa.Column("suite", sa.String(200), nullable=False),
    sa.Column("suite_hash", sa.String(64)),
    sa.Column("commit", sa.String(40)),
    sa.Column("dirty", sa.Boolean),
    sa.Column("started", sa.String(40)),
    sa.Column("finished", sa.String(40)),
    sa.Column("machine", sa.Text, nullable=False),  # JSON
    sa.Column("numerics", sa.Text, nullable=False),  # JSON
    sa.Column("manifest", sa.Text, nullable=False),  # JSON
    sa.Column("report", sa.Text),  # the run's report.html when it had one
    sa.Column("added", sa.String(40), nullable=False),
)
# One row per (row of results.jsonl, metric), plus per-cell summaries (kind "summary": Dice over
# seeds with its bootstrap CI, eps50). ``scenario`` is the pipeline of a throughput row and
# ``setting`` the rest of its key.
RESULTS = sa.Table(
    "results",
    METADATA,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("scenario", sa.String(200)),
    sa.Column("vendor", sa.String(100)),
    sa.Column("seed", sa.Integer),
    sa.Column("fold", sa.Integer),
    sa.Column("attack", sa.String(100)),
    sa.Column("eps", sa.Float),
    sa.Column("setting", sa.String(300)),
    sa.Column("metric", sa.String(100), nullable=False),
    sa.Column("value", sa.Float),
)
PER_IMAGE = sa.Table(
    "per_image",
    METADATA,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("scenario", sa.String(200), nullable=False),
    sa.Column("vendor", sa.String(100), nullable=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("fold", sa.Integer),
    sa.Column("image_index", sa.Integer, nullable=False),
    sa.Column("subject", sa.String(200)),
    sa.Column("dice_mean", sa.Float),
    sa.Column("dice_blood_pool", sa.Float),
    sa.Column("dice_myo", sa.Float),
    sa.Column("hd95_mm", sa.Float),
)


def engine_for(db: str | Path | None) -> sa.Engine:
    """An engine for a database path (SQLite) or a SQLAlchemy URL (anything with ``://``)."""
    db = DEFAULT_DB if db is None else db
    text = str(db)
    if "://" in text:
        try:
            return sa.create_engine(text)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise UserError(f"history: --db {text}: not a usable database URL ({exc})") from None
    path = Path(text)
    if not path.parent.is_dir():
        raise UserError(f"history: --db {path}: folder {path.parent} does not exist")
    if path.exists() and not path.is_file():
        raise UserError(f"history: --db {path}: not a file")
    return sa.create_engine(f"sqlite:///{path}")


def stored_version(conn: sa.Connection) -> int | None:
    """The database's schema version; None for an empty database (no tables)."""
    tables = set(sa.inspect(conn).get_table_names())
    if not tables:
        return None
    if "meta" not in tables:
        raise UserError("history: the database has tables but no 'meta' table: not a unetgan-bench history")
    value = conn.execute(sa.select(META.c.value).where(META.c.key == "schema_version")).scalar()
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"history: schema_version {value!r} in the database is not a version number") from None


def _migrate_1_to_2(conn: sa.Connection) -> None:
    """Version 2 adds ``runs.suite_hash`` (computed from each stored manifest) and ``per_image`` (empty for old runs)."""
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN suite_hash VARCHAR(64)"))
    for run_id, manifest in conn.execute(sa.select(RUNS.c.run_id, RUNS.c.manifest)).all():
        conn.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(suite_hash=suite_hash(json.loads(manifest))))
    PER_IMAGE.create(conn)


MIGRATIONS = {1: _migrate_1_to_2}  # version -> the step that brings it to version + 1


def suite_hash(manifest: dict) -> str | None:
    """The content hash of the resolved suite a run recorded in its manifest (None if it recorded none)."""
    config = manifest.get("suite_config")
    return config_hash(config) if isinstance(config, dict) else None


def open_engine(db: str | Path | None) -> sa.Engine:
    """Open (create or migrate) the history database.

    Args:
        db: a file path (SQLite; default ``runs/history.sqlite``) or a SQLAlchemy URL.

    Raises:
        UserError: the database is from a newer schema, is not a history database, or cannot be opened.
    """
    engine = engine_for(db)
    try:
        with engine.begin() as conn:
            version = stored_version(conn)
            if version is None:
                METADATA.create_all(conn)
                conn.execute(META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                return engine
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"history: the database has schema version {version}, newer than this unetgan-bench reads "
                    f"({SCHEMA_VERSION}); upgrade unetgan-bench"
                )
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
            conn.execute(META.update().where(META.c.key == "schema_version").values(value=str(version)))
    except sa.exc.DatabaseError as exc:
        raise UserError(f"history: cannot open {db or DEFAULT_DB}: {str(exc.orig).splitlines()[0]}") from None
    return engine
