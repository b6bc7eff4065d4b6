"""Retention of job folders and benchmark results: ``aifactory gc`` and the server's
periodic run share this library.

A folder is removed only when its owner is known to have ended (registry, scheduler, or the
run's own summary) and the retention policy (``Settings.retention``) says it has been kept
long enough; live folders and folders of unknown state are kept and listed with the reason.
"""

from aifactory.gc.collect import Kind, Outcome, Plan, apply, plan, policy_of, root_of
from aifactory.gc.evidence import Evidence, FolderState, Registries
from aifactory.gc.policy import Action, Folder
from aifactory.gc.scan import RefusedPath, remove_folder

__all__ = [
    "Action",
    "Evidence",
    "Folder",
    "FolderState",
    "Kind",
    "Outcome",
    "Plan",
    "RefusedPath",
    "Registries",
    "apply",
    "plan",
    "policy_of",
    "remove_folder",
    "root_of",
]
