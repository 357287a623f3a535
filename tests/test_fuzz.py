"""Fuzzing the command line (issue 15): generated suite files, results rows and manifests.

Suites come from the grammar of real ones (the tiny test suite and every built-in suite,
parsed, then keys and values swapped between them, replaced by odd values or dropped) and from
bytes (random, or a real suite's text with bytes flipped). Run folders come from the committed
smoke baseline with rows, manifest and per-image files damaged the same ways. Each input goes
through ``unetgan_bench.bench.cli.main`` in process (``validate`` for suites, ``report`` and
``compare`` for run folders), which must:

- exit with 0, 1 or 2 and never raise (no traceback);
- on 2, print exactly one ``error:`` line on stderr;
- write nothing outside the run folder it was given (a temporary root is listed before and after).

The example budget is fixed and derandomized, so every run tries the same inputs (about 45 s
on a 2-core machine); run with ``-s`` to see how many examples were tried and which distinct
exit paths (command, exit code and the start of the error message) they took. Inputs that
broke the rules once are kept in ``REGRESSIONS``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tomllib
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tiny_suites import TRANSLATOR, tiny_text

from unetgan_bench.bench.cli import main

BASELINE = Path(__file__).resolve().parents[1] / "bench" / "baselines" / "smoke"
# No shrinking: a fixed, quick budget; a failure shows the generated input as it was.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (test, exit code, start of the error message) -> examples; printed at the end of the module.
EXIT_PATHS: Counter[tuple[str, int, str]] = Counter()


# -- real inputs to start from -----------------------------------------------------------
def _real_suites() -> list[dict[str, Any]]:
    texts = [tiny_text(), tiny_text(extra=TRANSLATOR, scenarios=("clean", "unetgan"))]
    suites = resources.files("unetgan_bench.suites")
    texts += [f.read_text(encoding="utf-8") for f in sorted(suites.iterdir(), key=str) if f.name.endswith(".toml")]
    return [tomllib.loads(text) for text in texts]


REAL_SUITES = _real_suites()
# Every (table, key, value) of the real suites: the grammar mutations draw keys and values from.
REAL_ENTRIES = sorted(
    {
        (table, key, json.dumps(value, sort_keys=True))
        for suite in REAL_SUITES
        for table, body in suite.items()
        if isinstance(body, dict)
        for key, value in body.items()
    }
)
BASELINE_ROWS = [json.loads(line) for line in (BASELINE / "results.jsonl").read_text().splitlines()]
BASELINE_MANIFEST = json.loads((BASELINE / "manifest.json").read_text())


# -- TOML text from a parsed document ----------------------------------------------------------
def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's; TOML wants DEL escaped too, and takes astral characters raw.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    """TOML text of ``doc``: top-level keys, then one ``[table]`` per dict (nested dicts inline)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, body in doc.items():
        if isinstance(body, dict):
            lines.append(f"\n[{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def test_to_toml_round_trips_every_real_suite() -> None:
    for suite in REAL_SUITES:
        assert tomllib.loads(to_toml(suite)) == suite


# -- strategies ---------------------------------------------------------------------------
NAMES = st.sampled_from(sorted({k for _, k, _ in REAL_ENTRIES} | {"source", "seed", "root", "name"})) | st.text(
    max_size=8
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 1, 2**31, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "philips", "siemens", "phantom", "mnms", "clean", "unetgan", "ED", "../x", "nan"])
)
# TOML has no null; suites get every scalar but None.
TOML_VALUES = st.recursive(
    SCALARS.filter(lambda v: v is not None),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=6,
)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3), max_leaves=6
)


@st.composite
def mutated_doc(draw, base: list[dict[str, Any]], values, entries=()) -> dict[str, Any]:
    """A deep copy of one of ``base`` with 1-3 keys replaced, removed, added or taken from ``entries``."""
    doc = json.loads(json.dumps(draw(st.sampled_from(base))))
    for _ in range(draw(st.integers(1, 3))):
        path = _draw_path(draw, doc)
        parent, key = path
        action = draw(st.sampled_from(["set", "delete", "add", "borrow"] if entries else ["set", "delete", "add"]))
        if action == "set" and key is not None:
            parent[key] = draw(values)
        elif action == "delete" and key is not None:
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(NAMES)] = draw(values)
        elif action == "borrow":
            table, name, value = draw(st.sampled_from(entries))
            elsewhere = draw(st.sampled_from([False, False, False, True]))  # mostly where it belongs
            target = doc.setdefault(draw(NAMES) if elsewhere else table, {})
            if isinstance(target, dict):
                target[name] = json.loads(value)
    return doc


def _draw_path(draw, doc: Any) -> tuple[Any, Any]:
    """A (container, key or index) somewhere in ``doc``; key None for an empty container."""
    parent: Any = doc
    while True:
        keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
        if not keys:
            return parent, None
        key = draw(st.sampled_from(keys))
        child = parent[key]
        if not isinstance(child, (dict, list)) or not child or draw(st.booleans()):
            return parent, key
        parent = child


SYNTAX = b'"[]{}=,.:#\n -0119aeftnu\\'


@st.composite
def flipped_bytes(draw, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip" and at < len(data):  # mostly to characters that matter to TOML and JSON
            data[at] = draw(st.sampled_from([*SYNTAX, *SYNTAX, *SYNTAX, *range(256)]))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.binary(max_size=8))
    return bytes(data)


# Mostly the grammar of real suites, some damaged text, a few random bytes.
GRAMMAR = mutated_doc(REAL_SUITES, TOML_VALUES, REAL_ENTRIES).map(lambda d: to_toml(d).encode())
SUITE_BYTES = st.one_of(
    GRAMMAR,
    GRAMMAR,
    GRAMMAR,
    st.sampled_from(REAL_SUITES).flatmap(lambda d: flipped_bytes(to_toml(d))),
    st.binary(max_size=200),
)


# -- running the command line -------------------------------------------------------------
def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _exit_path(command: str, code: int, err: str, root: Path) -> tuple[str, int, str]:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if not errors:
        return command, code, ""
    text = errors[0].removeprefix("error: ").replace(str(root), "<tmp>")
    return command, code, ":".join(text.split(":")[:2])[:70]


def run_cli(argv: list[str], root: Path, run_dir: Path | None, record: bool = True) -> int:
    """``main(argv)`` inside ``root``, checked against the rules in the module docstring.

    ``record`` counts its exit path in ``EXIT_PATHS`` (not for the probes of known failures).
    """
    before = _listing(root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    after = _listing(root)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    allowed = str(run_dir.relative_to(root)) if run_dir is not None else None
    outside = sorted(p for p in changed if allowed is None or not (p == allowed or p.startswith(allowed + os.sep)))
    stderr = err.getvalue()
    if record:
        EXIT_PATHS[_exit_path(argv[0], code, stderr, root)] += 1
    assert code in (0, 1, 2), (code, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    if code == 2:
        assert sum(line.startswith("error:") for line in stderr.splitlines()) == 1, stderr
    assert not outside, f"written outside the run folder: {outside}"
    return code


@contextlib.contextmanager
def temp_root() -> Iterator[Path]:
    """A fresh folder per example (hypothesis runs many in one test call), also the data cache."""
    before = os.environ.get("UNETGAN_CACHE")
    with tempfile.TemporaryDirectory(prefix="unetgan-fuzz-") as name:
        os.environ["UNETGAN_CACHE"] = str(Path(name) / "cache")
        try:
            yield Path(name)
        finally:
            if before is None:
                del os.environ["UNETGAN_CACHE"]
            else:
                os.environ["UNETGAN_CACHE"] = before


@pytest.fixture(scope="module", autouse=True)
def exit_path_summary() -> Iterator[None]:
    yield
    tried = sum(EXIT_PATHS.values())
    print(f"\nfuzz: {tried} examples, {len(EXIT_PATHS)} distinct exit paths (command, exit code, error prefix):")
    for (command, code, prefix), n in sorted(EXIT_PATHS.items()):
        print(f"  {n:4d}  {command:8s} {code}  {prefix}")


# -- the tests ----------------------------------------------------------------------------
@settings(FUZZ, max_examples=200)
@given(suite=SUITE_BYTES)
def test_validate_generated_suites(suite: bytes) -> None:
    with temp_root() as root:
        path = root / "suite.toml"
        path.write_bytes(suite)
        run_cli(["validate", str(path)], root, None)


@st.composite
def run_folder(draw) -> dict[str, Any]:
    """Files of a run folder: 1-4 baseline rows, some damaged, and a manifest, maybe damaged."""
    picked = draw(st.lists(st.sampled_from(range(len(BASELINE_ROWS))), min_size=1, max_size=4, unique=True))
    rows: Any = [BASELINE_ROWS[i] for i in sorted(picked)]
    if draw(st.booleans()):
        rows = draw(mutated_doc([{"rows": rows}], JSON_VALUES)).get("rows", [])
    lines = [json.dumps(row) for row in (rows if isinstance(rows, list) else [rows])]
    results = ("\n".join(lines) + "\n").encode()
    damage = draw(st.sampled_from(["none", "none", "flip", "junk line", "random"]))
    if damage == "flip":
        results = draw(flipped_bytes(results.decode()))
    elif damage == "junk line":
        results += draw(st.binary(max_size=30))
    elif damage == "random":
        results = draw(st.binary(max_size=200))
    manifest: bytes | None = json.dumps(BASELINE_MANIFEST).encode()
    kind = draw(st.sampled_from(["keep", "keep", "mutate", "missing", "random"]))
    if kind == "mutate":
        manifest = json.dumps(draw(mutated_doc([BASELINE_MANIFEST], JSON_VALUES))).encode()
    elif kind == "missing":
        manifest = None
    elif kind == "random":
        manifest = draw(st.binary(max_size=100))
    per_image = draw(st.sampled_from(["keep", "keep", "truncate", "missing"]))
    return {"results": results, "manifest": manifest, "per_image": per_image}


def _write_run(folder: Path, files: dict[str, Any]) -> None:
    shutil.copytree(BASELINE, folder)
    (folder / "results.jsonl").write_bytes(files["results"])
    if files["manifest"] is None:
        (folder / "manifest.json").unlink()
    else:
        (folder / "manifest.json").write_bytes(files["manifest"])
    first = sorted((folder / "per_image").glob("*.csv"))[0]
    if files["per_image"] == "truncate":
        first.write_bytes(first.read_bytes()[:40])
    elif files["per_image"] == "missing":
        first.unlink()


def compare_damaged(files: dict[str, Any], base_first: bool, record: bool = True) -> None:
    """``compare`` between the baseline and a damaged copy of it (either as the base)."""
    with temp_root() as root:
        damaged, pristine = root / "damaged", root / "pristine"
        _write_run(damaged, files)
        shutil.copytree(BASELINE, pristine)
        base, new = (damaged, pristine) if base_first else (pristine, damaged)
        run_cli(["compare", str(base), str(new)], root, new, record)


# Inputs that break the rules on this branch today. Reading run folders (bench/results.py,
# bench/manifest.py) is being hardened concurrently (H2); each entry is the smallest run folder
# that shows one failure. When its fix is merged the entry XPASSes (strict): delete it then.
_BASELINE_ROW = json.dumps(BASELINE_ROWS[0]).encode() + b"\n"
# Inputs that once escaped as tracebacks (found by this test); each is now a fixed regression case.
REGRESSIONS = {
    "results.jsonl is not UTF-8": {"results": _BASELINE_ROW + b"\x80\n"},
    "manifest.json is not UTF-8": {"manifest": b"\xa1{}"},
    "a results row that is JSON but not an object": {"results": b"1\nnull\n"},
}


def _known(overrides: dict[str, bytes]) -> dict[str, Any]:
    files = {"results": _BASELINE_ROW, "manifest": json.dumps(BASELINE_MANIFEST).encode(), "per_image": "keep"}
    return {**files, **overrides}


@pytest.mark.parametrize("overrides", list(REGRESSIONS.values()), ids=list(REGRESSIONS))
def test_regressions_found_by_fuzzing(overrides: dict[str, bytes]) -> None:
    """``compare`` with each folder as the new run, then as the base: exit 2 and one line, never a traceback."""
    for base_first in (False, True):
        compare_damaged(_known(overrides), base_first, record=False)


@settings(FUZZ, max_examples=30)
@given(files=run_folder(), base_first=st.booleans())
def test_compare_generated_run_folders(files: dict[str, Any], base_first: bool) -> None:
    compare_damaged(files, base_first)


@settings(FUZZ, max_examples=5)
@given(files=run_folder())
def test_report_generated_run_folders(files: dict[str, Any]) -> None:
    with temp_root() as root:
        run = root / "run"
        _write_run(run, files)
        run_cli(["report", str(run)], root, run)
