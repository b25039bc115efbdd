"""--threads belongs to one job: the process's thread count comes back afterwards, even on an error."""

import pytest
import torch

from talkinghead.utils.device import torch_threads


def test_threads_are_restored_after_the_block_and_after_an_error():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(before + 2):
            raise RuntimeError("job failed")
    assert torch.get_num_threads() == before


def test_none_leaves_the_count_alone_and_zero_is_refused():
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        with torch_threads(0):
            pass
