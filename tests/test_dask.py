"""Distributed analysis on a Dask LocalCluster gives the same index as a local run."""

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from recommender import Recommender  # noqa: E402


def test_dask_update_equals_local(tmp_path, demo_collection):
    src, _ = demo_collection
    local = Recommender(tmp_path / "local")
    local.update([src], progress=False, descriptors=False)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        dist = Recommender(tmp_path / "dask")
        rep = dist.update([src], progress=False, descriptors=False, client=client)
        workers_used = len(client.scheduler_info()["workers"])
    assert rep.added == 8 and rep.failed == 0
    assert workers_used == 2

    a, b = local.tracks().set_index("path"), dist.tracks().set_index("path")
    assert set(a.index) == set(b.index)
    for space in ("embedding", "tags"):
        ia, Xa = local.catalog.vectors(space)
        ib, Xb = dist.catalog.vectors(space)
        pa = dict(zip(local.tracks().loc[ia, "path"], Xa))
        pb = dict(zip(dist.tracks().loc[ib, "path"], Xb))
        for p in pa:
            np.testing.assert_allclose(pa[p], pb[p], atol=1e-4)
    # queries agree too
    q = local.tracks().index[0]
    qp = local.tracks().loc[q, "path"]
    ra = local.similar(int(q), k=3)
    rb = dist.similar(qp, k=3)
    assert list(ra["path"]) == list(rb["path"])
