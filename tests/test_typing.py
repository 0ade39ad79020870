"""The type checker (mypy, configured in pyproject.toml) passes on the whole package, in CI."""
import os

from mypy import api

from _paths import REPO_ROOT


def test_mypy_finds_no_errors_in_the_package():
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # mypy reads [tool.mypy] (files = ["neurokpflow"]) from the project's pyproject.toml
    try:
        stdout, stderr, status = api.run(["--no-incremental", "--cache-dir", os.devnull])
    finally:
        os.chdir(cwd)
    assert status == 0, stdout + stderr
    assert "Success: no issues found" in stdout
