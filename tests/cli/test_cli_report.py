"""The HTML report writer and the exception-to-exit-code mapping of the command line."""
import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from neurokpflow.cli.errors import (EXIT_DEPENDENCY, EXIT_INTERNAL, EXIT_MISSING, EXIT_UNUSABLE, EXIT_USAGE, CLIError,  # noqa: E402
                                    classify)
from neurokpflow.cli.report import Report, write_atomic  # noqa: E402


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


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "result.txt"
    write_atomic(target, "first")
    write_atomic(target, b"second")
    assert target.read_text() == "second"

    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing)
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.txt"]


@pytest.mark.parametrize("exc, code", [
    (CLIError("bad", EXIT_UNUSABLE), EXIT_UNUSABLE),
    (FileNotFoundError(2, "No such file or directory", "/x.nwb"), EXIT_MISSING),
    (ValueError("steps must be positive\nmore detail"), EXIT_USAGE),
    (KeyError("missing key"), EXIT_USAGE),
    (RuntimeError("unexpected"), EXIT_INTERNAL),
])
def test_classify_maps_exceptions_to_one_line_and_a_code(exc, code):
    got, message = classify(exc)
    assert got == code and "\n" not in message and message


def test_library_input_errors_mean_unusable_input():
    from neurokpflow.data import NWBLoadError
    from neurokpflow.training import CheckpointError

    assert classify(NWBLoadError("not an NWB file"))[0] == EXIT_UNUSABLE
    assert classify(CheckpointError("truncated"))[0] == EXIT_UNUSABLE


def test_exit_codes_follow_the_error_family_not_the_class():
    from neurokpflow import errors

    class NewMeasureFailure(errors.DegenerateInputError):  # a class the CLI has never heard of
        pass

    assert classify(NewMeasureFailure("constant activity"))[0] == EXIT_UNUSABLE
    assert classify(errors.ConvergenceError("eigsh stopped at 300 restarts"))[0] == EXIT_UNUSABLE
    assert classify(errors.AlignmentError("no shared condition"))[0] == EXIT_UNUSABLE
    assert classify(errors.InputError("steps must be positive"))[0] == EXIT_USAGE
    assert classify(errors.MissingExtraError("needs zarr: install neurokpflow[sweep]"))[0] == EXIT_DEPENDENCY
    assert classify(errors.DownloadError("offline"))[0] == EXIT_MISSING
