"""The emulator's fixed names: default port, state folder and the files in it; its errors.

The state folder holds every object, SSM SecureString values and the functions' code: it is kept
0700 and its files 0600, whatever the umask.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from cli.errors import CliError

DEFAULT_PORT = 4567  # LocalStack's 4566 + 1: both can run side by side.
DEFAULT_STATE_DIR = Path(".imgproc") / "local"
INFO_FILE = "emulator.json"
STATE_FILE = "state.pickle"
LOG_FILE = "emulator.log"


class EmulatorError(CliError):
    """A one-line problem starting or stopping the emulator."""


class EmulatorUnavailable(EmulatorError):
    """moto's server (the `imgproc-aws[local]` extra) is not installed."""

    exit_code = 2


def require_moto() -> str:
    """moto's version, or a clear error naming the extra to install."""
    try:
        import flask  # noqa: F401  (moto[server] needs Flask)
        import moto
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError as exc:
        raise EmulatorUnavailable(
            f"`imgproc local` needs moto's server ({exc.name} is missing): pip install -e '.[local]' in imgproc's checkout (distribution imgproc-aws)"
        ) from None
    return moto.__version__


def port_available(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server does: connections of a stopped emulator in TIME_WAIT do not block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it 0700, also when it already existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def open_private_file(path: Path, flags: int) -> int:
    """A descriptor on ``path`` opened 0600 with ``flags``, never through a symlink planted there."""
    descriptor = os.open(path, flags | os.O_NOFOLLOW, 0o600)
    os.fchmod(descriptor, 0o600)
    return descriptor


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, 0600 (a half-written file is never left behind)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(open_private_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as file:
        file.write(data)
    tmp.replace(path)
