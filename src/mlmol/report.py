"""Reports: one self-contained HTML page per run (figures embedded as PNG), for every kind of run.

Each kind draws its own figures (:func:`mlmol.run_report.report` for Boltzmann generators, and
``report`` in :mod:`mlmol.vmc.run` and :mod:`mlmol.operators.run`); this module writes the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .data import atomic_write
from .rundir import RunDirectory


def figure_png(fig: Figure) -> str:
    """The figure as base64 PNG text (and closed)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(run: RunDirectory, title: str, notes: list[str], rows: list[tuple[str, str]],
                 figures: list[tuple[str, Figure]], config: dict) -> Path:
    """Write RUN/report.html: ``title``, ``notes`` (where the numbers come from), the metrics
    ``rows``, the titled ``figures`` and the run's config; returns its path."""
    table = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    body = "".join(f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{figure_png(fig)}'/>"
                   for name, fig in figures)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mlmol report: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
img{{max-width:100%}}pre{{background:#f4f4f4;padding:1em}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{"<br/>".join(html.escape(note) for note in notes)}</p>
<table>{table}</table>{body}
<h2>Config</h2><pre>{html.escape(json.dumps(config, indent=2))}</pre></body></html>"""
    atomic_write(run.report_file, page)
    return run.report_file
