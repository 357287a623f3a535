"""``RunStats``: a run's tables, each computed once and shared by the report, its figures and the exports."""

from __future__ import annotations

import functools

import pandas as pd

from unetgan_bench.reports.cellstats import segmentation_stats
from unetgan_bench.reports.collect import Run
from unetgan_bench.reports.corruption_tables import corruption_dice, corruption_summary
from unetgan_bench.reports.dose_response import dose_response_table
from unetgan_bench.reports.fgsm_tables import eps50_table, fgsm_curves
from unetgan_bench.reports.loss_terms import loss_term_table
from unetgan_bench.reports.recovery import recovery_table
from unetgan_bench.reports.throughput_tables import stage_table, throughput_table


class RunStats:
    """The tables of one run, computed on first use and then reused.

    One render prints Table 1's Dice statistics in the HTML table, the bar chart, the recovery
    table, the CSV, the LaTeX and ``summary.json``; each metric's statistics (with their
    bootstrap) are computed once here and every one of those reads them. The frames are shared:
    treat them as read-only.

    Args:
        run: the run, from :func:`reports.collect.load_run`.

    Example:
        >>> stats = RunStats(load_run("runs/smoke"))  # doctest: +SKIP
        >>> stats.segmentation("dice_mean") is stats.segmentation("dice_mean")  # doctest: +SKIP
        True
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._segmentation: dict[str, pd.DataFrame] = {}

    def segmentation(self, metric: str = "dice_mean") -> pd.DataFrame:
        """:func:`reports.cellstats.segmentation_stats` of the run for ``metric`` (computed once)."""
        if metric not in self._segmentation:
            self._segmentation[metric] = segmentation_stats(self.run, metric)
        return self._segmentation[metric]

    @functools.cached_property
    def recovery(self) -> pd.DataFrame:
        """:func:`reports.recovery.recovery_table` on the run's Dice statistics."""
        return recovery_table(self.run, self.segmentation("dice_mean"))

    @functools.cached_property
    def dose_response(self) -> pd.DataFrame:
        """:func:`reports.dose_response.dose_response_table` of the run's swept settings."""
        return dose_response_table(self.run, self.segmentation("dice_mean"), self.recovery)

    @functools.cached_property
    def loss_terms(self) -> pd.DataFrame:
        """:func:`reports.loss_terms.loss_term_table` of the run's translators."""
        return loss_term_table(self.run)

    @functools.cached_property
    def fgsm_curves(self) -> pd.DataFrame:
        """:func:`reports.fgsm_tables.fgsm_curves` of the run."""
        return fgsm_curves(self.run)

    @functools.cached_property
    def eps50(self) -> pd.DataFrame:
        """:func:`reports.fgsm_tables.eps50_table` of the run's attack curves."""
        return eps50_table(self.run, self.fgsm_curves)

    @functools.cached_property
    def corruption_dice(self) -> pd.DataFrame:
        """:func:`reports.corruption_tables.corruption_dice` of the run."""
        return corruption_dice(self.run)

    @functools.cached_property
    def corruption_summary(self) -> pd.DataFrame:
        """:func:`reports.corruption_tables.corruption_summary` of the run's corruption Dice."""
        return corruption_summary(self.run, self.corruption_dice)

    @functools.cached_property
    def throughput(self) -> pd.DataFrame:
        """:func:`reports.throughput_tables.throughput_table` of the run."""
        return throughput_table(self.run)

    @functools.cached_property
    def stages(self) -> pd.DataFrame:
        """:func:`reports.throughput_tables.stage_table` of the run's manifest."""
        return stage_table(self.run.manifest)
