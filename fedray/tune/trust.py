"""Only trusted sweep state is unpickled: Tune's saved state is signed, and checked before a resume.

Ray Tune saves a sweep's state as pickles (``tuner.pkl``, the search algorithm's state, callback
states) and as JSON with pickled fields inside (``experiment_state-*.json``), and ``Tuner.restore``
unpickles them: a file planted in the sweep's storage (a shared directory or bucket) would run code on
the machine that resumes. Keeping fedray's own sweep state in JSON and rebuilding the tuner from it would
mean re-implementing Tune's restore (trial statuses, searcher and scheduler state); signing keeps Tune's
restore and adds one check in front of it:

- a key of 32 random bytes is created once per user, mode 0600, in ``$FEDRAY_CONFIG_DIR`` (default
  ``~/.config/fedray``) as ``sweep-signing.key``;
- :class:`StateSigner`, a Tune callback, signs the state each time Tune saves it: Tune asks its callbacks
  for their state right after writing the experiment and searcher state into its local staging
  directory and before uploading that directory, so the signature (``fedray-state-signature.json``, an
  HMAC-SHA256 of every state file, and one over the list) travels with exactly the files it covers —
  after Ctrl+C and after a crash alike;
- :func:`verify_state` runs before ``Tuner.restore``: every state file must be listed with a matching
  HMAC under this user's key, and nothing may be listed that is missing; otherwise the resume is refused
  and nothing is unpickled.

The state files are the sweep directory's top-level files (where Tune reads its state; fedray's own
outputs and Tune's empty storage marker excepted) and each trial's ``error.pkl``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Optional

from ray.tune import Callback

from fedray.errors import FedRayError

KEY_FILE = "sweep-signing.key"
SIGNATURE_FILE = "fedray-state-signature.json"
#: Top-level files of a sweep directory that are not Tune state: fedray's outputs and Tune's marker.
NOT_STATE = frozenset({SIGNATURE_FILE, "results.csv", "results.md", "best_scenario.yaml", "sweep.json",
                       ".validate_storage_marker"})
TRIAL_STATE = ("error.pkl",)
TUNER_FILE = "tuner.pkl"


class UntrustedStateError(FedRayError):
    """A sweep's saved state is not signed by this user's fedray; it is not unpickled."""


def config_dir() -> Path:
    """The user's fedray configuration directory: ``$FEDRAY_CONFIG_DIR`` or ``~/.config/fedray``."""
    return Path(os.environ.get("FEDRAY_CONFIG_DIR") or Path.home() / ".config" / "fedray").expanduser()


def signing_key(create: bool = True) -> bytes:
    """This user's signing key, created (mode 0600) on first use when ``create``."""
    path = config_dir() / KEY_FILE
    if not path.exists():
        if not create:
            raise UntrustedStateError(f"no sweep-signing key at {path}: this user's fedray has never signed "
                                      "a sweep, so it did not write this one")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        except FileExistsError:  # another fedray created it meanwhile
            pass
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise FedRayError(f"the sweep-signing key {path} can be read or written by other users (mode "
                          f"{mode:o}); make it private: chmod 600 {path}")
    key = path.read_bytes()
    if len(key) != 32:
        raise FedRayError(f"the sweep-signing key {path} is damaged ({len(key)} bytes, expected 32); "
                          "delete it (sweeps it signed then can no longer be resumed)")
    return key


def _file_mac(key: bytes, name: str, content: bytes) -> str:
    return hmac.new(key, name.encode() + b"\0" + content, hashlib.sha256).hexdigest()


def _list_mac(key: bytes, files: dict[str, str]) -> str:
    return hmac.new(key, json.dumps(files, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _filesystem(path: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the path on it, for a local directory or a URI (``s3://…``)."""
    from pyarrow import fs

    if "://" in path:
        return fs.FileSystem.from_uri(path)
    return fs.LocalFileSystem(), str(Path(path).resolve())


def state_files(directory: str) -> dict[str, bytes]:
    """The state files of a sweep directory (see the module docstring), relative name → content."""
    from pyarrow import fs

    filesystem, root = _filesystem(directory)
    out: dict[str, bytes] = {}
    for info in filesystem.get_file_info(fs.FileSelector(root, recursive=False)):
        if info.type == fs.FileType.File and info.base_name not in NOT_STATE:
            names = [info.base_name]
        elif info.type == fs.FileType.Directory:
            names = [f"{info.base_name}/{n}" for n in TRIAL_STATE
                     if filesystem.get_file_info(f"{info.path}/{n}").type == fs.FileType.File]
        else:
            names = []
        for name in names:
            with filesystem.open_input_stream(f"{root}/{name}") as handle:
                out[name] = handle.readall()
    return out


def sign_state(directory: str, key: Optional[bytes] = None) -> None:
    """Write the signature of ``directory``'s state files (a local directory: Tune's staging copy)."""
    key = key or signing_key()
    files = {name: _file_mac(key, name, content) for name, content in state_files(directory).items()}
    document = {"version": 1, "files": files, "mac": _list_mac(key, files)}
    path = Path(directory) / SIGNATURE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def verify_state(directory: str) -> None:
    """Raise :class:`UntrustedStateError` unless every state file of the sweep at ``directory`` is
    signed by this user's key (and every signed file is there). Reads no pickle."""
    refuse = ("fedray will not unpickle it. If you did not put these files there, someone else did; "
              "start the sweep afresh under another name (name=<new name>) or in another --storage")
    signature = _read_signature(directory)
    if signature is None:
        raise UntrustedStateError(f"the saved state of the sweep at {directory} has no fedray signature "
                                  f"({SIGNATURE_FILE}): this user's fedray did not write it, an older fedray "
                                  f"did, or it stopped before its first trial started; {refuse}")
    key = signing_key(create=False)
    files = signature.get("files") if isinstance(signature, dict) else None
    if not isinstance(files, dict) or not hmac.compare_digest(str(signature.get("mac", "")),
                                                              _list_mac(key, files)):
        raise UntrustedStateError(f"the signature {directory}/{SIGNATURE_FILE} was not made with this user's "
                                  f"key ({config_dir() / KEY_FILE}) or was changed; {refuse}")
    present = state_files(directory)
    bad = sorted(name for name, content in present.items()
                 if not hmac.compare_digest(str(files.get(name, "")), _file_mac(key, name, content)))
    missing = sorted(set(files) - set(present))
    if bad or missing:
        detail = "; ".join(part for part in (f"unsigned or changed: {', '.join(bad)}" if bad else "",
                                             f"signed but missing: {', '.join(missing)}" if missing else "")
                           if part)
        raise UntrustedStateError(f"the saved state of the sweep at {directory} does not match its fedray "
                                  f"signature ({detail}); {refuse}")


def _read_signature(directory: str) -> Any:
    filesystem, root = _filesystem(directory)
    from pyarrow import fs

    path = f"{root}/{SIGNATURE_FILE}"
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as handle:
        try:
            return json.loads(handle.readall().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}


def drop_trial_errors(directory: str) -> None:
    """Remove the trials' pickled errors (after :func:`verify_state`): a resume restarts errored trials
    and Tune forgets their old errors, so these files would only linger unsigned."""
    filesystem, root = _filesystem(directory)
    for name in state_files(directory):
        if "/" in name:
            filesystem.delete_file(f"{root}/{name}")


class StateSigner(Callback):
    """A Tune callback that signs the sweep's state each time Tune saves it (see the module docstring).

    Tune calls ``get_state`` of its callbacks after it has written the experiment and searcher state to
    its staging directory and before it uploads that directory; the signer signs the staging copy there
    and returns None (it has no state of its own, so Tune writes no callback pickle for it). The staging
    directory is the parent of any trial's ``local_path``.
    """

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self._staging: Optional[str] = None

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._staging is None and trials and getattr(trials[0], "local_path", None):
            self._staging = str(Path(trials[0].local_path).parent)

    def get_state(self) -> None:
        if self._staging is not None and Path(self._staging).is_dir():
            self._stage_tuner_state()
            sign_state(self._staging)
        return None

    def _stage_tuner_state(self) -> None:
        """Copy ``tuner.pkl`` into the staging directory once: Tune writes it straight to the storage
        when the Tuner is built (by this process, moments before), so it would otherwise go unsigned."""
        staged = Path(self._staging, TUNER_FILE)
        if staged.exists():  # a restored sweep: Tune downloaded it, and it was verified first
            return
        filesystem, root = _filesystem(self.experiment_path)
        with filesystem.open_input_stream(f"{root}/{TUNER_FILE}") as handle:
            staged.write_bytes(handle.readall())

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: the staging path is per session
        return {"experiment_path": self.experiment_path, "_staging": None}
