"""Remote load-generator workers: a benchmark's workers as one batch job, over NATS.

For runs bigger than one machine (``BenchConfig.worker_nodes``), the client service renders
``recipes/client/loadgen.yaml``, submits it through the shared executor (``local`` or
``slurm``) and coordinates the workers over NATS (:mod:`.coordinator`); each worker
(:mod:`.worker`, ``aifactory bench worker``) runs the loadgen's own :func:`run_worker` and
publishes its records. Statistics are computed once over the union of all records, exactly
as for local worker processes. Message formats: :mod:`aifactory.shared.messages.workers`.
"""

from aifactory.loadgen.remote.coordinator import (
    RemoteTimeouts,
    RemoteWorkersError,
    run_remote_benchmark,
)
from aifactory.loadgen.remote.job import cancel_workers_job

__all__ = ["RemoteTimeouts", "RemoteWorkersError", "cancel_workers_job", "run_remote_benchmark"]
