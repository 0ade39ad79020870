"""Shared fixtures for the compare tests (imported by the test_compare_* modules)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The compare tests use tiny matrices, for which OpenMP thread start-up dominates (badly so on a
    loaded machine); run them single-threaded and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fixture_restores_thread_count(one_torch_thread):
    assert torch.get_num_threads() == 1
