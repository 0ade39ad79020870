"""The exception-to-exit-code mapping of the command line."""
import pytest

from neurokpflow.cli.errors import (EXIT_DEPENDENCY, EXIT_INTERNAL, EXIT_MISSING, EXIT_UNUSABLE, EXIT_USAGE, CLIError,
                                    classify)


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
