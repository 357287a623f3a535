"""Reports of a run: collect rows into tables, render ``report.html``, export CSV/LaTeX/JSON.

Entry points: :func:`reports.render.render_report` and :func:`reports.exports.write_exports`.
"""
