"""Suite files: what to measure, validated strictly before anything runs.

A suite is a TOML file with these tables (see ``suites/quick.toml`` for a commented example):
``[suite]``, ``[data]``, ``[vendors]``, ``[splits]``, ``[unet]``, ``[translator]``,
``[scenarios]``, ``[metrics]`` and the optional ``[fgsm]``, ``[corruptions]``, ``[throughput]``, ``[compare]`` and
``[models.NAME]`` (external segmenters, ``unetgan_core.external``). Every error names the file, the
table and key, and what is allowed.

Segmenters: every scenario segments with the LV-Unet the suite trains (``"unet"``) unless
``[scenarios] segmenter = "model:NAME"`` names a ``[models.NAME]`` table for all of them; one ``run``
entry may name its own as ``"SCENARIO@model:NAME"`` (or ``"SCENARIO@unet"``), so built-in and
external rows sit in one table. External models are loaded and probed at validation, so a missing
file or a broken contract is a one-line error before anything runs.

Plugins: ``[suite] plugins`` are imported (``unetgan_core.plugins``) before any name is checked.

Data: one ``[data]`` table, or several ``[data.NAME]`` tables whose vendors are named ``NAME:vendor``
(``bench.datasection``, which also resolves real data sets' root folders).
"""

from __future__ import annotations

import dataclasses
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from unetgan_bench.bench.compare_settings import CompareSection
from unetgan_bench.bench.datasection import MissingDataRoot, parse_data, resolve_data_root  # noqa: F401  (re-exported)
from unetgan_bench.bench.registries import known, open_source, registry
from unetgan_bench.bench.schema import describe, field, load_table
from unetgan_bench.bench.variants import SweepSection, VariantTable, declared_scenarios
from unetgan_core.corruptions.section import CorruptionSection
from unetgan_core.data.multisource import SEPARATOR
from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec
from unetgan_core.hashing import canonical
from unetgan_core.names import NAME_RULE, check_name
from unetgan_core.plugins import import_plugins
from unetgan_core.postprocess import POSTPROCESS
from unetgan_core.scenarios import Scenario
from unetgan_core.throughput.pipelines import ThroughputSection, parse_section
from unetgan_core.training import SegTrainConfig, TranslatorConfig
from unetgan_core.tta import TTA

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPLIT_NAMES = ("train", "val", "test")
MAX_SEED = 2**31 - 1  # seeds are 31-bit (``hashing.derive_seed``)
MAX_SUBJECTS = 1_000_000  # largest subject count of a split


@dataclasses.dataclass(frozen=True)
class SuiteSection:
    name: str = field(doc="suite name, shown in reports")
    description: str = field("", doc="one paragraph on what the suite measures")
    seeds: list[int] = field(
        [0], doc="replicate seeds; every trained model is trained once per seed", nonempty=True, ge=0, le=MAX_SEED
    )
    device: str = field("cpu", doc="where to train and evaluate", choices=("cpu", "cuda", "auto"))
    fast_path: bool = field(
        True,
        doc="evaluate on the fast path (channels_last, plus bf16 where the hardware runs it faster) where its Dice stays within 0.005 of fp32",
    )
    citation: str = field("", doc="reference the data set asks reports to cite (printed in summary.json)")
    train_threads: int = field(
        1,
        doc="CPU threads of each training task; part of a trained model's key, because torch's CPU sums depend on the thread count (the same weights on any machine and for any --jobs)",
        ge=1,
        le=1024,
    )
    plugins: list[str] = field(
        [], doc="modules imported before the suite is checked, to register outside scenarios, attacks, sources"
    )

    def __post_init__(self) -> None:
        check_name("suite name", self.name, "name")


def _check_vendor(vendor: str, where: str) -> None:
    """A vendor is a name, or ``SOURCE:vendor`` (two names) in a suite with several data sources."""
    for part in vendor.split(SEPARATOR, 1) if isinstance(vendor, str) else [vendor]:
        check_name("vendor", part, where)


@dataclasses.dataclass(frozen=True)
class VendorSection:
    source: str = field(doc="vendor (style) the Unet is trained on; SOURCE:vendor with several [data.NAME] tables")
    targets: list[str] = field(
        doc="vendors the Unet is adapted to and tested on; [] for a one-vendor data set (Unet scenarios only)"
    )
    styles: dict = field({}, doc="phantom only: new styles declared as parameter ranges, name -> table")

    def __post_init__(self) -> None:
        _check_vendor(self.source, "source")
        for vendor in self.targets:
            _check_vendor(vendor, "targets")
        for style, ranges in self.styles.items():
            check_name("style", style, "styles")
            if not isinstance(ranges, dict):
                raise UserError(f"styles.{style}: expected a table of parameter ranges, got {ranges!r}")


@dataclasses.dataclass(frozen=True)
class SplitSection:
    seed: int = field(0, doc="seed of the subject split (fixed across replicate seeds)", ge=0, le=MAX_SEED)
    source: dict = field(
        {"train": 0.6, "val": 0.15, "test": 0.25}, doc="source subjects per split (counts or fractions)"
    )
    target: dict = field(
        {"train": 0.5, "val": 0.1, "test": 0.4},
        doc="target subjects: train (unlabelled, translator training), val (selection), test (scoring)",
    )
    folds: int = field(
        0,
        doc="cross-validation by subject: the source subjects form this many groups and each is tested once "
        "by a Unet trained on the others (0 = off; replaces the source split)",
        ge=0,
        le=1000,
    )
    fold_val: float = field(
        0.0,
        doc="with folds: source subjects of each fold's training part held out for validation: a whole count "
        "(1, 2, ...) or a fraction in (0, 1); 0 = none, the Unet keeps its final epoch",
        ge=0.0,
        le=MAX_SUBJECTS,
    )


UNET = "unet"  # the segmenter the suite trains
MODEL_PREFIX = "model:"  # a segmenter "model:NAME" is the suite's [models.NAME]


@dataclasses.dataclass(frozen=True)
class RunEntry:
    """One ``[scenarios] run`` entry.

    Args:
        label: the entry as written; rows and ``[fgsm] scenarios`` use it (``"histmatch@model:monai"``).
        scenario: the registered scenario (``"histmatch"``).
        segmenter: ``"unet"`` or ``"model:NAME"``.
    """

    label: str
    scenario: str
    segmenter: str

    @property
    def model(self) -> str | None:
        """The ``[models.NAME]`` this entry segments with, or None for the suite's trained LV-Unet."""
        return self.segmenter[len(MODEL_PREFIX) :] if self.segmenter.startswith(MODEL_PREFIX) else None


@dataclasses.dataclass(frozen=True)
class ScenarioSection:
    run: list[str] = field(doc="scenarios to measure (see `unetgan-bench list`)", nonempty=True)
    selection: str = field(
        "unlabelled",
        doc="translator checkpoint selection; 'oracle' uses target labels",
        choices=("unlabelled", "oracle"),
    )
    segmenter: str = field(
        UNET,
        doc='segmenter of every run entry: "unet" (the LV-Unet the suite trains) or "model:NAME" ([models.NAME]); '
        'an entry "SCENARIO@model:NAME" names its own',
    )

    def entries(self) -> list[RunEntry]:
        """The ``run`` list as (label, scenario, segmenter) entries, in order."""
        out = []
        for label in self.run:
            scenario, _, segmenter = label.partition("@")
            out.append(RunEntry(label, scenario, segmenter or self.segmenter))
        return out


@dataclasses.dataclass(frozen=True)
class MetricSection:
    hd95: bool = field(True, doc="also measure the 95th-percentile Hausdorff distance (mm)")
    bootstrap_samples: int = field(2000, doc="bootstrap resamples for 95% confidence intervals", ge=100, le=1_000_000)
    figure_images: int = field(4, doc="images per target in the translation figure", ge=0, le=16)
    postprocess: str = field(
        "none",
        doc="clean-up of predicted label maps before scoring (unetgan_core/postprocess.py)",
        choices=tuple(POSTPROCESS),
        omit_default=True,  # added later: a suite without it keeps its recorded configuration
    )
    tta: str = field(
        "none",
        doc="test-time augmentation: probabilities averaged over small rotations (unetgan_core/tta.py)",
        choices=TTA,
        omit_default=True,  # added later: a suite without it keeps its recorded configuration
    )


@dataclasses.dataclass(frozen=True)
class FgsmSection:
    attacks: list[str] = field(["fgsm", "random_sign"], doc="attacks to run (see `unetgan-bench list`)", nonempty=True)
    eps: list[float] = field(
        [0.0, 0.002, 0.005, 0.01, 0.02, 0.05], doc="perturbation sizes, units of the [0,1] input", ge=0.0, le=1.0
    )
    scenarios: list[str] = field(["clean"], doc="pipelines to attack", nonempty=True)
    vendors: list[str] = field([], doc="vendors to attack (default: source and targets)")
    n_images: int = field(16, doc="test images attacked per vendor", ge=1, le=100_000)
    target: str = field(
        "label", doc="loss against the ground truth or the model's own prediction", choices=("label", "prediction")
    )
    pgd_steps: int = field(10, doc="PGD iterations", ge=1, le=100_000)
    pgd_step_fraction: float = field(0.25, doc="PGD step size as a fraction of eps", gt=0.0, le=1.0)
    seeds: list[int] = field([], doc="replicate seeds to attack (default: the first suite seed)", ge=0, le=MAX_SEED)


@dataclasses.dataclass(frozen=True)
class Suite:
    path: str
    suite: SuiteSection
    data: dict[str, Any]
    vendors: VendorSection
    splits: SplitSection
    unet: SegTrainConfig
    translator: TranslatorConfig
    scenarios: ScenarioSection
    metrics: MetricSection
    fgsm: FgsmSection | None
    throughput: ThroughputSection | None
    compare: CompareSection
    models: dict[str, ExternalModelSpec] = dataclasses.field(default_factory=dict)
    # [data.NAME] tables of a suite with several data sources (then ``data`` holds what they share).
    sources: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    corruptions: CorruptionSection | None = None
    variants: dict[str, Scenario] = dataclasses.field(default_factory=dict)
    sweep: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.suite.name

    def scenario(self, name: str) -> Scenario:
        """The scenario ``name``: one the suite declares (``[scenarios.NAME]``, ``[sweep]``), else a registered one."""
        return self.variants[name] if name in self.variants else registry("scenarios").get(name)

    def scenario_names(self) -> list[str]:
        """Every scenario a run entry may name: the registered ones and the suite's own."""
        return [*registry("scenarios").names(), *self.variants]

    @property
    def data_source(self) -> str:
        """The data source's name, or ``"NAME=source, ..."`` for several (manifest and report)."""
        if not self.sources:
            return self.data["source"]
        return ", ".join(f"{name}={table['source']}" for name, table in self.sources.items())

    @property
    def all_vendors(self) -> list[str]:
        return [self.vendors.source, *self.vendors.targets]

    def resolved(self) -> dict[str, Any]:
        """The whole suite as plain JSON data (stored in the manifest and every row)."""
        out = canonical(self)
        out.pop("path")
        if not self.sources:
            out.pop("sources")  # a one-source suite's record is as it was before several sources existed
        if out.get("corruptions") is None:
            out.pop("corruptions", None)  # a suite without the section keeps its recorded configuration
        for key in ("variants", "sweep"):
            if not out.get(key):
                out.pop(key, None)  # likewise a suite that declares no scenarios of its own
        return out

    @property
    def base_dir(self) -> Path:
        """The suite file's folder: ``[models.NAME]`` paths are relative to it."""
        return Path(self.path).resolve().parent

    def with_seeds(self, seeds: list[int]) -> Suite:
        return dataclasses.replace(self, suite=dataclasses.replace(self.suite, seeds=list(seeds)))


# Every table but [data] (``bench.datasection``, typed by each data source's options) is loaded by one of these.
SECTION_TYPES: dict[str, type] = {
    "suite": SuiteSection,
    "vendors": VendorSection,
    "splits": SplitSection,
    "unet": SegTrainConfig,
    "translator": TranslatorConfig,
    "scenarios": ScenarioSection,
    "metrics": MetricSection,
    "fgsm": FgsmSection,
    "corruptions": CorruptionSection,
    "throughput": ThroughputSection,
    "compare": CompareSection,
}
SECTIONS = {"data", "models", "sweep", *SECTION_TYPES}


def describe_sections() -> list[str]:
    """One line per suite setting (table, key, type with bounds, default, doc), and the rule for names."""
    lines = []
    for table, cls in SECTION_TYPES.items():
        for key, kind, default, doc in describe(cls):
            lines.append(f"[{table}] {key}: {kind}; default {default!r}; {doc}")
    for table, cls in (("models.NAME", ExternalModelSpec), ("scenarios.NAME", VariantTable), ("sweep", SweepSection)):
        for key, kind, default, doc in describe(cls):
            lines.append(f"[{table}] {key}: {kind}; default {default!r}; {doc}")
    sources = registry("data sources")
    for name in sources.names():
        options = getattr(sources.get(name), "OPTIONS", None)
        for key, kind, default, doc in describe(options) if options else []:
            lines.append(f"[data] ({name}) {key}: {kind}; default {default!r}; {doc}")
    lines.append("[data.NAME]: one table per data source in a suite with several; vendors are then NAME:vendor")
    lines.append(f"names (suite, vendors, styles, scenarios, models): {NAME_RULE}")
    return lines


def builtin_suites() -> dict[str, Path]:
    """Name -> file of every built-in suite, read from the installed package (``unetgan_bench.suites``)."""
    folder = resources.files("unetgan_bench.suites")
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")}


def resolve_suite_path(name_or_path: str) -> Path:
    """A path as given, or the name of a built-in suite in ``suites/``."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"{path}: suite file not found")
        return path
    builtin = builtin_suites()
    if name_or_path in builtin:
        return builtin[name_or_path]
    known = ", ".join(sorted(builtin))
    raise UserError(f"unknown suite {name_or_path!r}; built-in suites: {known}; or give a path to a .toml file")


def _check_split(table: Any, where: str) -> None:
    if not isinstance(table, dict) or set(table) != set(SPLIT_NAMES):
        raise UserError(f"{where}: expected a table with keys train, val, test; got {table!r}")
    values = list(table.values())
    if all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SUBJECTS for v in values):
        return
    if all(isinstance(v, float) and 0 < v < 1 for v in values) and sum(values) <= 1.0 + 1e-9:
        return
    raise UserError(
        f"{where}: expected subject counts in 1..{MAX_SUBJECTS} or fractions in (0, 1) summing to at most 1; "
        f"got {table!r}"
    )


def _check_folds(suite: Suite, raw_splits: Any, where: str) -> None:
    splits = suite.splits
    if splits.folds == 1:
        raise UserError(f"{where}: [splits] folds: expected 0 (off) or at least 2, got 1")
    if not splits.folds:
        if splits.fold_val:
            raise UserError(f"{where}: [splits] fold_val: only used with folds >= 2")
        return
    if isinstance(raw_splits, dict) and "source" in raw_splits:
        raise UserError(f"{where}: [splits] source: not used with folds (each fold tests one group); use fold_val")
    if splits.fold_val >= 1 and splits.fold_val != int(splits.fold_val):
        raise UserError(
            f"{where}: [splits] fold_val: expected a whole count or a fraction below 1, got {splits.fold_val!r}"
        )


def _check_targets(suite: Suite, where: str) -> None:
    """Scenarios that adapt target images need targets; a one-vendor suite may run only Unet scenarios."""
    if suite.vendors.targets:
        return
    scenarios = registry("scenarios")
    adapting = [e.label for e in suite.scenarios.entries() if suite.scenario(e.scenario).translator is not None]
    if adapting:
        unet_only = ", ".join(n for n in scenarios.names() if scenarios.get(n).translator is None)
        raise UserError(
            f"{where}: [scenarios] run: {adapting[0]!r} adapts target-vendor images but [vendors] targets is empty; "
            f"use Unet-only scenarios ({unet_only})"
        )


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise UserError(f"{where}: not valid TOML (arrays or tables nested too deeply)") from None


def _throughput(raw: dict[str, Any], unet: SegTrainConfig, where: str) -> ThroughputSection | None:
    """The ``[throughput]`` section; its ``unet`` options default to the suite's ``[unet] model_kwargs``."""
    if "throughput" not in raw:
        return None
    table = raw["throughput"]
    if isinstance(table, dict) and "unet" not in table:
        table = {**table, "unet": unet.model_kwargs}
    return parse_section(table, where=f"{where}: [throughput]")


def check_names(suite: Suite, where: str) -> None:
    """Reject names a suite uses that nothing registers (scenarios, attacks, vendors; data sources: ``parse_data``)."""
    entries = suite.scenarios.entries()
    known(f"{where}: [scenarios]", "run", [e.scenario for e in entries], suite.scenario_names())
    segmenters = [UNET, *(MODEL_PREFIX + name for name in suite.models)]
    known(f"{where}: [scenarios]", "segmenter", [suite.scenarios.segmenter], segmenters)
    known(f"{where}: [scenarios]", "run (SCENARIO@segmenter)", [e.segmenter for e in entries], segmenters)
    if len({e.label for e in entries}) != len(entries):
        raise UserError(f"{where}: [scenarios] run: an entry is listed twice")
    if suite.fgsm is not None:
        known(f"{where}: [fgsm]", "attacks", suite.fgsm.attacks, registry("attacks").names())
        known(f"{where}: [fgsm]", "scenarios", suite.fgsm.scenarios, suite.scenarios.run)
        known(f"{where}: [fgsm]", "vendors", suite.fgsm.vendors, suite.all_vendors)
        known(f"{where}: [fgsm]", "seeds", [str(s) for s in suite.fgsm.seeds], [str(s) for s in suite.suite.seeds])
    _check_corruptions(suite, where)
    source = open_source(suite, where)
    known(f"{where}: [vendors]", "source/targets", suite.all_vendors, source.vendors())


def _check_corruptions(suite: Suite, where: str) -> None:
    """Reject names ``[corruptions]`` uses that the suite or the corruption registry does not know."""
    c = suite.corruptions
    if c is None:
        return
    at = f"{where}: [corruptions]"
    known(at, "corruptions", c.corruptions, registry("corruptions").names())
    known(at, "scenarios", c.scenarios, suite.scenarios.run)
    known(at, "reference", [c.reference], c.scenarios)
    known(at, "vendors", c.vendors, suite.all_vendors)
    known(at, "seeds", [str(s) for s in c.seeds], [str(s) for s in suite.suite.seeds])
    for key in ("corruptions", "severities", "scenarios", "vendors", "seeds"):
        values = getattr(c, key)
        if len(set(values)) != len(values):
            raise UserError(f"{at} {key}: a value is listed twice")


def _models(raw: Any, where: str) -> dict[str, ExternalModelSpec]:
    """The ``[models.NAME]`` tables as checked ``ExternalModelSpec``s (files are not read here)."""
    if not isinstance(raw, dict) or not all(isinstance(t, dict) for t in raw.values()):
        raise UserError(f"{where}: [models] expected one table per model, [models.NAME]")
    out = {}
    for name, table in raw.items():
        at = f"{where}: [models.{name}]"
        check_name("model name", name, f"{where}: [models]")
        spec = load_table(ExternalModelSpec, table, at)
        spec.check(at)
        out[name] = spec
    return out


def check_models(suite: Suite, where: str) -> None:
    """Load and probe every ``[models.NAME]`` and refuse feature-loss scenarios its model cannot serve.

    Each model is loaded on the CPU and run on a probe batch at the data's image size, so a missing
    file, a wrong output shape or channel count, NaN outputs or a size mismatch stop ``validate`` and
    ``run`` with one line before anything is written. A learned translator needs the model's feature
    layers (``ExternalSegmenter.feature_refusal``) for the feature loss (``lambda_unet > 0``) and for
    unlabelled checkpoint selection, which compares the segmenter's features of translated and source images.
    """
    from unetgan_core.external import load_external

    if not suite.models:
        return
    source = open_source(suite, where)
    loaded = {
        name: load_external(spec, suite.base_dir, name=name, probe_size=getattr(source, "size_px", 64))
        for name, spec in suite.models.items()
    }
    for entry in suite.scenarios.entries():
        scenario = suite.scenario(entry.scenario)
        if entry.model is None or not scenario.learned_translator:
            continue
        refusal = loaded[entry.model].feature_refusal
        weight = scenario.translator_config(suite.translator).lambda_unet
        needs = [f"the Unet feature loss (lambda_unet = {weight:g})"] if weight > 0 else []
        if suite.scenarios.selection == "unlabelled":
            needs.append("unlabelled checkpoint selection (a distance between its features)")
        if needs and refusal:
            raise UserError(
                f"{where}: [scenarios] run: {entry.label!r} trains a translator with {' and '.join(needs)}, but "
                f"{refusal}; declare feature_layers of a python model, or use a scenario without the feature loss "
                'and [scenarios] selection = "oracle"'
            )


def _scenario_tables(raw: Any, sweep: Any, where: str) -> tuple[dict[str, Any], dict[str, Scenario], list[str]]:
    """``[scenarios]``'s own keys (with the sweep's cells added to ``run``), its variants, and the cell names."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [scenarios] expected a table, got {type(raw).__name__}")
    keys = {f.name for f in dataclasses.fields(ScenarioSection)}
    own = {k: v for k, v in raw.items() if k in keys or not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if k not in own}
    reserved = set(keys) | set(registry("scenarios").names())
    variants, cells = declared_scenarios(tables, sweep, registry("scenarios").get, reserved, where)
    if cells and isinstance(own.get("run"), list):
        own["run"] = [*own["run"], *(c for c in cells if c not in own["run"])]
    return own, variants, cells


def parse_suite(text: str, where: str, data_root: str | Path | None = None) -> Suite:
    """Parse and validate suite TOML ``text``: every table is loaded once, into frozen dataclasses.

    Args:
        text: the suite file's content.
        where: names the file in error messages.
        data_root: overrides ``[data] root`` before the data source is opened (``--data-root``).
    """
    return suite_from_tables(_read_toml(text, where), where, data_root)


def suite_from_tables(raw: dict[str, Any], where: str, data_root: str | Path | None = None) -> Suite:
    """``parse_suite`` of a suite file already read into tables (e.g. with some settings changed)."""
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise UserError(f"{where}: unknown table [{unknown[0]}]; allowed: {', '.join(sorted(SECTIONS))}")
    for required in ("suite", "data", "vendors", "scenarios"):
        if required not in raw:
            raise UserError(f"{where}: missing table [{required}]")

    section = load_table(SuiteSection, raw["suite"], f"{where}: [suite]")
    import_plugins(section.plugins, f"{where}: [suite] plugins")
    data, sources = parse_data(raw["data"], where, data_root)
    unet = load_table(SegTrainConfig, raw.get("unet", {}), f"{where}: [unet]")
    section_keys, variants, cells = _scenario_tables(raw["scenarios"], raw.get("sweep"), where)
    suite = Suite(
        path=where,
        suite=section,
        data=data,
        vendors=load_table(VendorSection, raw["vendors"], f"{where}: [vendors]"),
        splits=load_table(SplitSection, raw.get("splits", {}), f"{where}: [splits]"),
        unet=unet,
        translator=load_table(TranslatorConfig, raw.get("translator", {}), f"{where}: [translator]"),
        scenarios=load_table(ScenarioSection, section_keys, f"{where}: [scenarios]"),
        metrics=load_table(MetricSection, raw.get("metrics", {}), f"{where}: [metrics]"),
        fgsm=load_table(FgsmSection, raw["fgsm"], f"{where}: [fgsm]") if "fgsm" in raw else None,
        throughput=_throughput(raw, unet, where),
        compare=load_table(CompareSection, raw.get("compare", {}), f"{where}: [compare]"),
        models=_models(raw.get("models", {}), where),
        sources=sources,
        corruptions=(
            load_table(CorruptionSection, raw["corruptions"], f"{where}: [corruptions]")
            if "corruptions" in raw
            else None
        ),
        variants=variants,
        sweep=cells,
    )
    _check_split(suite.splits.source, f"{where}: [splits] source")
    _check_split(suite.splits.target, f"{where}: [splits] target")
    if suite.vendors.source in suite.vendors.targets:
        raise UserError(
            f"{where}: [vendors] targets: the source vendor {suite.vendors.source!r} cannot also be a target"
        )
    if len(set(suite.vendors.targets)) != len(suite.vendors.targets):
        raise UserError(f"{where}: [vendors] targets: a vendor is listed twice")
    if len(set(suite.suite.seeds)) != len(suite.suite.seeds):
        raise UserError(f"{where}: [suite] seeds: a seed is listed twice")
    _check_folds(suite, raw.get("splits"), where)
    check_names(suite, where)
    _check_targets(suite, where)
    check_models(suite, where)
    return suite


def load_suite(name_or_path: str, data_root: str | Path | None = None) -> Suite:
    """Load a built-in suite by name or a suite file by path, fully validated.

    Args:
        name_or_path: a built-in suite name or a ``.toml`` path.
        data_root: overrides ``[data] root`` (``--data-root``) before the data source is opened.
    """
    path = resolve_suite_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read suite file ({exc})") from None
    return parse_suite(text, str(path), data_root)
