"""Models named by Hugging Face id, found in the local hub cache without a download (and without torch).

``model.path`` may be a directory or an id (``org/name``) whose snapshot is already in ``HF_HUB_CACHE``
(``models--org--name/snapshots/<revision>/`` named by ``refs/main``). The scenario check and the builder
both resolve it here, so ``fedray validate`` accepts exactly what ``fedray run`` can load.
"""

from __future__ import annotations

import re
from pathlib import Path

from fedray.errors import ModelError

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def looks_like_repo_id(path: str) -> bool:
    """Whether ``path`` reads as a hub id (``name`` or ``org/name``) rather than a filesystem path."""
    return bool(_REPO_ID.fullmatch(path)) and not Path(path).expanduser().exists()


def cached_snapshot(repo_id: str) -> str:
    """The snapshot folder of model ``repo_id`` in the local hub cache, else a ModelError saying how to
    fetch it."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = constants.HF_HUB_CACHE  # read at call time: HF_HOME / HF_HUB_CACHE decide it
    try:
        return snapshot_download(repo_id, local_files_only=True, cache_dir=cache)
    except (LocalEntryNotFoundError, HFValidationError) as exc:
        raise ModelError(
            f"model.path={repo_id!r} is neither a local directory nor a model in the local Hugging Face "
            f"cache ({cache}); fedray never downloads. Download it beforehand on a machine with network "
            f"access (hf download {repo_id}, with HF_HOME/HF_HUB_CACHE pointing at the cache the actors "
            f"see), or set model.path to a directory saved with save_pretrained") from exc


def model_path_problem(path: str) -> str | None:
    """What is wrong with ``model.path`` for the ``hf`` builder (None: a directory, or an id in the cache)."""
    if Path(path).expanduser().is_dir():
        return None
    if not looks_like_repo_id(path):
        return f"{path!r} does not exist or is not a directory; fix the path (or the environment variable " \
               "it comes from), or give a model id already in the local Hugging Face cache"
    try:
        snapshot = Path(cached_snapshot(path))
    except ModelError as err:
        return str(err).removeprefix("model.path=")
    if not (snapshot / "config.json").is_file():
        return f"the cached snapshot of {path!r} ({snapshot}) has no config.json; download the whole model " \
               f"(hf download {path})"
    return None
