"""Saving and restoring the emulator's state: every moto service in use, pickled on shutdown.

moto keeps everything in memory. On `imgproc local down` the state of each service that was used
(buckets and objects, stacks, functions with their code, roles, log groups, queues...) is pickled
to ``<state-dir>/state.pickle``; the next `imgproc local up` restores it if the same moto version
wrote it (another version's file is set aside, never half-loaded).
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

# moto services whose state is never saved (moto's own bookkeeping, metadata stubs).
_UNSAVED = {"moto_api._internal", "instance_metadata"}


class _StatePickler(pickle.Pickler):
    """Pickles moto backends: locks become new locks, weak maps keep their entries."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type(threading.RLock())):
            return threading.RLock, ()
        if isinstance(obj, type(threading.Lock())):
            return threading.Lock, ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, weakref.WeakValueDictionary):
            return weakref.WeakValueDictionary, (dict(obj),)
        if isinstance(obj, collections.defaultdict) and getattr(obj.default_factory, "__name__", "") == "<lambda>":
            return collections.defaultdict, (type(obj.default_factory()),), None, None, iter(obj.items())
        return NotImplemented


def _service_backends(names: set[str] | None = None) -> dict[str, Any]:
    """moto's per-service state holders: the ``names`` given, or those of services already in use."""
    from moto.backend_index import backend_url_patterns
    from moto.backends import ALT_SERVICE_NAMES, get_backend

    found = {}
    for name in sorted({n for n, _ in backend_url_patterns} - _UNSAVED):
        if names is not None and name not in names:
            continue
        # A service nobody called was never imported (and holds nothing): importing all ~150 costs seconds.
        if names is None and f"moto.{ALT_SERVICE_NAMES.get(name, name)}" not in sys.modules:
            continue
        try:
            found[name] = get_backend(name)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a service whose optional dependency is missing
            continue
    return found


def save_state(path: Path) -> int:
    """Write every moto service's state to ``path`` atomically; returns the size in bytes."""
    import moto

    state = {name: dict(backends) for name, backends in _service_backends().items() if len(backends)}
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"moto": moto.__version__, "services": state})
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return len(buffer.getvalue())


def load_state(path: Path) -> str:
    """Restore state saved by `save_state`; returns a one-line summary (or why it was skipped)."""
    import moto

    if not path.exists():
        return "no saved state: starting empty"
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the emulator
        aside = path.with_suffix(f".unreadable-{int(time.time())}")
        path.replace(aside)
        return f"saved state unreadable ({type(exc).__name__}); moved to {aside.name}, starting empty"
    if saved.get("moto") != moto.__version__:
        aside = path.with_suffix(f".moto-{saved.get('moto')}")
        path.replace(aside)
        return f"saved state is from moto {saved.get('moto')} (now {moto.__version__}); moved to {aside.name}, starting empty"
    backends = _service_backends(set(saved["services"]))
    for name, accounts in saved["services"].items():
        if name in backends:
            backends[name].clear()
            backends[name].update(accounts)
    return f"restored {', '.join(sorted(saved['services']))} from {path}"
