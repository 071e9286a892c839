"""Which Dask scheduler a fit runs on.

1. An active ``distributed.Client`` (the usual case: the user started one,
   e.g. on a ``LocalCluster``, a ``dask-cuda`` ``LocalCUDACluster`` or a remote
   cluster) - used as is.
2. A scheduler chosen explicitly with ``dask.config.set(scheduler=...)``
   (``"threads"``, ``"sync"``, ...) - honoured.
3. Otherwise a ``LocalCluster`` is started once per process (Dask's default
   sizing) and its ``Client`` becomes the default client; later fits reuse it.
"""

from __future__ import annotations

import dask

_DEFAULT_CLIENT = None


def active_client():
    """The default ``distributed.Client`` if one is running, else None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    return client if client.status in ("running", "connecting", "newly-created") else None


def ensure_scheduler():
    """Make sure computations have a scheduler (see the module docstring); returns the Client or None."""
    global _DEFAULT_CLIENT
    client = active_client()
    if client is not None:
        return client
    explicit = dask.config.get("scheduler", None)
    if explicit is not None and explicit not in ("dask.distributed", "distributed"):
        return None
    from distributed import Client, LocalCluster

    _DEFAULT_CLIENT = Client(LocalCluster(), set_as_default=True)
    return _DEFAULT_CLIENT


def threads_per_host():
    """Dask worker threads per host of the active client ({} without one)."""
    client = active_client()
    if client is None:
        return {}
    hosts: dict[str, int] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = address.split("://")[-1].rsplit(":", 1)[0]
        hosts[host] = hosts.get(host, 0) + int(info.get("nthreads", 1))
    return hosts
