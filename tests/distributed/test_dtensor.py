"""ember.distributed.tensor on 2 ranks (scripts/dtensor.py): distribute_tensor,
redistribute between Shard dims and from Partial, full_tensor, the local shape and
offset, and all_to_all_single_autograd's backward."""
from __future__ import annotations

import pytest

from test_distributed_jobs import _mpi_missing, assert_ok, launch

pytestmark = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def test_dtensor_layouts_match_numpy_chunks():
    job = launch(2, "dtensor.py")
    assert_ok(job, 2, "dtensor OK")
