"""The HTML report (viz.report): escaping, embedded figures, plain figure names."""
import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from neurokpflow.viz.report import Report  # noqa: E402


def test_report_escapes_text_and_embeds_the_figure_it_saves(tmp_path):
    report = Report("a <b> & c", figures_dir=tmp_path / "figures")
    report.section("Numbers", "x < y and `code`")
    report.table(["name", "value"], [["<script>", 0.123456], ["n", 3]])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    report.figure(fig, "line", "a line")
    path = report.write(tmp_path / "report.html")
    html = path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &lt;b&gt; &amp; c" in html
    assert "<code>code</code>" in html and '<td class="num">0.1235</td>' in html
    png = (tmp_path / "figures" / "line.png").read_bytes()
    assert png.startswith(b"\x89PNG") and base64.b64encode(png).decode() in html
    assert not plt.fignum_exists(fig.number), "figures are closed once embedded"


def test_table_rows_must_match_the_header():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Report("t").table(["a", "b", "c"], [[1, 2]])


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", ""])
def test_figure_names_are_plain_stems(name):
    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file stem"):
        Report("t").figure(fig, name)
    plt.close(fig)
