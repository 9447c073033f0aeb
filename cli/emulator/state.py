"""Saving and restoring the emulator's state: every moto service in use, pickled on shutdown.

moto keeps everything in memory. On `imgproc local down` the state of each service that was used
(buckets and objects, stacks, functions with their code, roles, log groups, queues, parameters...)
is pickled to ``<state-dir>/state.pickle``; the next `imgproc local up` restores it.

Unpickling runs code, and the state folder sits in a checkout that someone else may control, so
the file is sealed with an HMAC-SHA256 under a per-user key (``$XDG_CONFIG_HOME/imgproc/state.key``,
0600, made on the first save) and nothing is unpickled before the seal checks out. A file that
cannot be restored in full (no seal, another user's or a changed file, another moto version, a
service that does not come back) stops `local up` and stays where it is: `--reset` starts empty.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import io
import os
import pickle
import secrets
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from cli.emulator.settings import EmulatorError, write_private_file

# moto services whose state is never saved (moto's own bookkeeping, metadata stubs).
_UNSAVED = {"moto_api._internal", "instance_metadata"}
# First line of a sealed state file; the HMAC (hex) is the second, the pickle follows.
_MAGIC = b"imgproc-emulator-state 1\n"
_KEY_BYTES = 32
_RESET_HINT = "start empty with `imgproc local up --reset`"


class StateError(EmulatorError):
    """Saved state that may not or cannot be restored: `local up` stops and keeps the file."""


def state_key_path() -> Path:
    """This user's state key: in $XDG_CONFIG_HOME (or ~/.config), never in the checkout."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "imgproc" / "state.key"


def _read_key(path: Path) -> bytes | None:
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the state key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise StateError(f"the state key {path} is readable by other users: chmod 600 {path}")
    if len(key) != _KEY_BYTES:
        raise StateError(f"the state key {path} is damaged (not {_KEY_BYTES} bytes): delete it and {_RESET_HINT}")
    return key


def _key_for_saving() -> bytes:
    """This user's key, created (0600, folder 0700) the first time state is saved."""
    path = state_key_path()
    key = _read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another imgproc made it just now: use theirs
        return _read_key(path) or b""
    with os.fdopen(descriptor, "wb") as file:
        file.write(secrets.token_bytes(_KEY_BYTES))
    return _read_key(path) or b""


def _seal(payload: bytes, key: bytes) -> bytes:
    return _MAGIC + _mac(payload, key) + b"\n" + payload


def _mac(payload: bytes, key: bytes) -> bytes:
    return hmac.new(key, _MAGIC + payload, hashlib.sha256).hexdigest().encode("ascii")


def read_sealed(path: Path) -> bytes:
    """The pickle in ``path`` once its seal proves this user's imgproc wrote it; nothing is unpickled here."""
    data = path.read_bytes()
    refused = f"refusing to load the saved state {path}: "
    if not data.startswith(_MAGIC):
        raise StateError(refused + f"it is not sealed by imgproc (another program's file, or an older imgproc's); {_RESET_HINT}")
    mac, _, payload = data[len(_MAGIC):].partition(b"\n")
    key = _read_key(state_key_path())
    if key is None:
        raise StateError(refused + f"your imgproc did not write it (you have no state key at {state_key_path()}); {_RESET_HINT}")
    if not hmac.compare_digest(mac, _mac(payload, key)):
        raise StateError(refused + f"your imgproc did not write it, or it was changed since (its seal does not match); {_RESET_HINT}")
    return payload


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
        if isinstance(obj, collections.defaultdict):
            return _reduce_defaultdict(obj)
        return NotImplemented


def _reduce_defaultdict(obj: collections.defaultdict[Any, Any]) -> Any:
    """A defaultdict (or subclass) rebuilt without calling the subclass's __init__.

    pickle's own reduction calls ``cls(default_factory)``, which fails for subclasses that take
    other arguments (moto's SSM ParameterDict(account_id, region_name)); a lambda factory cannot be
    pickled at all and is replaced by the type it makes.
    """
    factory = obj.default_factory
    if factory is not None and getattr(factory, "__name__", "") == "<lambda>":
        factory = type(factory())
    if type(obj) is collections.defaultdict and factory is obj.default_factory:
        return NotImplemented
    return _new_defaultdict, (type(obj), factory), dict(getattr(obj, "__dict__", {})) or None, None, iter(obj.items())


def _new_defaultdict(cls: type[collections.defaultdict[Any, Any]], factory: Any) -> collections.defaultdict[Any, Any]:
    made = cls.__new__(cls)
    collections.defaultdict.__init__(made, factory)
    return made


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
            # `name` comes from moto's own index, not one of get_backend's literal overloads.
            found[name] = get_backend(name)  # type: ignore[call-overload]
        except Exception:  # noqa: BLE001 - a service whose optional dependency is missing
            continue
    return found


def save_state(path: Path) -> int:
    """Write every moto service's state to ``path``, sealed, atomically and 0600; returns the size in bytes."""
    import moto

    state = {name: dict(backends) for name, backends in _service_backends().items() if len(backends)}
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"moto": moto.__version__, "services": state})
    sealed = _seal(buffer.getvalue(), _key_for_saving())
    write_private_file(path, sealed)
    return len(sealed)


def load_state(path: Path) -> str:
    """Restore state saved by `save_state`; returns a one-line summary, raises StateError if it cannot."""
    import moto

    if not path.exists():
        return "no saved state: starting empty"
    payload = read_sealed(path)
    try:
        saved = pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the user must hear it and keep the file
        raise StateError(f"the saved state {path} cannot be restored ({type(exc).__name__}: {exc}); "
                         f"it is kept as it is; {_RESET_HINT}") from None
    if saved.get("moto") != moto.__version__:
        raise StateError(f"the saved state {path} was written by moto {saved.get('moto')} and cannot be restored by "
                         f"moto {moto.__version__}; install that version, or {_RESET_HINT}")
    backends = _service_backends(set(saved["services"]))
    missing = sorted(set(saved["services"]) - set(backends))
    if missing:
        raise StateError(f"the saved state {path} holds {', '.join(missing)}, which this moto cannot load; {_RESET_HINT}")
    for name, accounts in saved["services"].items():
        backends[name].clear()
        backends[name].update(accounts)
    return f"restored {', '.join(sorted(saved['services']))} from {path}"
