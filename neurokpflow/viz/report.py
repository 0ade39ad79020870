"""A self-contained HTML report: headings, text, tables of numbers and embedded PNG figures.

>>> report = Report("My run", figures_dir="out/figures")
>>> report.section("Training", "A GRU trained for 400 steps.")
>>> report.table(["quantity", "value"], [["accuracy", "98 %"]])
>>> report.figure(fig, "loss", "Training loss.")          # also written to out/figures/loss.png
>>> report.write("out/report.html")

Every figure is embedded as a base64 PNG, so the HTML file can be mailed or moved on its own;
the PNG copies in ``figures_dir`` serve other documents.  Files are written to a temporary name
and renamed into place, so an interrupted run never leaves a half-written report.
"""
from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

from .._io import atomic_write
from ..errors import InputError

__all__ = ["Report"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.5}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9rem}table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1.2rem 0}
figure img{max-width:100%}figcaption{color:#444;font-size:.92rem}
code{background:#f5f5f5;padding:0 .2rem}
"""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Report:
    """Collects report blocks in order; :meth:`write` renders them into one HTML file.

    Parameters
    ----------
    title : str
    figures_dir : path, optional
        Where :meth:`figure` also saves each figure as ``NAME.png`` (``None``: embed only).
    """

    def __init__(self, title: str, figures_dir=None):
        self.title = str(title)
        self.figures_dir = None if figures_dir is None else Path(figures_dir)
        self.blocks: list[str] = []
        self.figure_paths: list[Path] = []

    def section(self, heading: str, text: str = "") -> "Report":
        """Start a section; ``text`` (optional) is its first paragraph."""
        self.blocks.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self.paragraph(text)
        return self

    def paragraph(self, text: str) -> "Report":
        """A paragraph of plain text (escaped; ``code`` spans in backticks are rendered as code)."""
        parts = html.escape(str(text)).split("`")
        body = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        self.blocks.append(f"<p>{body}</p>")
        return self

    def table(self, header, rows, caption: str = "") -> "Report":
        """A table; numbers are right-aligned, everything else is shown with ``str``."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        lines = []
        for row in rows:
            if len(row) != len(header):
                raise InputError(f"table row {row!r} has {len(row)} cells for {len(header)} columns")
            cells = "".join(f'<td class="num">{v:.4g}</td>' if _is_number(v) else f"<td>{html.escape(str(v))}</td>"
                            for v in row)
            lines.append(f"<tr>{cells}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")
        return self

    def figure(self, fig, name: str, caption: str = "", dpi: int = 110) -> "Report":
        """Embed a matplotlib figure (closed afterwards); also saved as ``figures_dir/NAME.png``."""
        import matplotlib.pyplot as plt

        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise InputError(f"figure name must be a plain file stem, got {name!r}")
        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        finally:
            plt.close(fig)
        png = buffer.getvalue()
        if self.figures_dir is not None:
            self.figure_paths.append(atomic_write(self.figures_dir / f"{name}.png", png))
        encoded = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.blocks.append(f'<figure id="{html.escape(name)}"><img alt="{html.escape(caption or name)}" '
                           f'src="data:image/png;base64,{encoded}">{cap}</figure>')
        return self

    def render(self) -> str:
        """The complete HTML document."""
        from .._version import __version__

        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1><p class=\"meta\">neurokpflow {__version__} · {stamp}</p>"
                + "\n".join(self.blocks) + "</body></html>\n")

    def write(self, path) -> Path:
        """Render and write atomically to ``path``; returns the path."""
        return atomic_write(path, self.render())
