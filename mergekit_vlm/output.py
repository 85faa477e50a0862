"""Output folders of VLM merges: checked before, staged during, complete and honest after.

mergekit writes tensors and a config; a VLM output also needs the VLM's tokenizer, processor,
chat template and generation config, a config whose dtype says what was written, and a card.
The folder only appears at the requested path once all of that is there.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import struct
import tempfile
from typing import Dict, Iterator, Optional

from mergekit_vlm.errors import MergekitVlmError

LOG = logging.getLogger(__name__)

WEIGHT_INDEX = "model.safetensors.index.json"
# Files of a VLM folder that describe how to feed it, copied as they are.
SUPPORT_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "generation_config.json",
)


def local_folder(model, options=None, patterns=None) -> Optional[str]:
    """A model's folder on disk; Hub ids are downloaded (only ``patterns`` when given)."""
    path = model.model.path
    if os.path.isdir(path):
        return path
    import huggingface_hub

    return huggingface_hub.snapshot_download(
        path,
        revision=model.model.revision,
        cache_dir=getattr(options, "transformers_cache", None),
        allow_patterns=patterns,
    )


# --- before -----------------------------------------------------------------------------------


def read_safetensors_header(path: str) -> Dict:
    """The JSON header of a .safetensors file; raises MergekitVlmError when it is cut short."""
    size = os.path.getsize(path)
    with open(path, "rb") as fp:
        head = fp.read(8)
        if len(head) < 8:
            raise MergekitVlmError(f"{path} is truncated ({size} bytes): not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            raise MergekitVlmError(f"{path} is truncated: its header alone needs {8 + length} bytes, file has {size}")
        header = json.loads(fp.read(length))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end > size:
        raise MergekitVlmError(
            f"{path} is truncated: {size} bytes on disk, its header needs {8 + length + end}; download it again"
        )
    return header


def check_shards(folder: str) -> None:
    """Every shard a local checkpoint names exists and is whole."""
    index_path = os.path.join(folder, WEIGHT_INDEX)
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as fp:
            shards = sorted(set(json.load(fp)["weight_map"].values()))
    else:
        shards = [os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.safetensors"))]
    if not shards and not glob.glob(os.path.join(folder, "*.bin")):
        raise MergekitVlmError(f"{folder} has no model weights (*.safetensors)")
    for shard in shards:
        path = os.path.join(folder, shard)
        if not os.path.exists(path):
            raise MergekitVlmError(f"{path} is missing but {WEIGHT_INDEX} lists it; download it again")
        read_safetensors_header(path)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def preflight(merge_config, out_path: str, options) -> None:
    """Refuse what would fail half-way or damage an input, before anything is written."""
    for model in merge_config.referenced_models():
        folder = model.model.path
        if not os.path.isdir(folder):
            continue  # a Hub id: mergekit downloads it
        if _inside(out_path, folder):
            raise MergekitVlmError(
                f"output path {out_path} is inside the input model folder {folder}; pick another output folder"
            )
        check_shards(folder)
    if os.path.exists(out_path) and not os.path.isdir(out_path):
        raise MergekitVlmError(f"output path {out_path} exists and is not a folder")


# --- during -----------------------------------------------------------------------------------


@contextlib.contextmanager
def staging(out_path: str) -> Iterator[str]:
    """A hidden sibling folder to write into; moved to ``out_path`` only if all went well."""
    out_path = os.path.abspath(out_path)
    parent = os.path.dirname(out_path)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f".{os.path.basename(out_path)}.incomplete-", dir=parent)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, out_path)


def publish(stage: str, out_path: str) -> None:
    if not os.path.exists(out_path):
        os.replace(stage, out_path)
        return
    # An existing folder (mergekit writes into one too): drop stale shards, then move ours in.
    for stale in glob.glob(os.path.join(out_path, "*.safetensors")) + glob.glob(os.path.join(out_path, WEIGHT_INDEX)):
        os.remove(stale)
    for name in os.listdir(stage):
        os.replace(os.path.join(stage, name), os.path.join(out_path, name))
    os.rmdir(stage)


# --- after ------------------------------------------------------------------------------------


def output_tensors(folder: str) -> Dict[str, Dict]:
    """name -> {dtype, shape} of every tensor in a safetensors checkpoint folder."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        header = read_safetensors_header(path)
        out.update({k: v for k, v in header.items() if k != "__metadata__"})
    return out


_SAFETENSORS_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def finish_output(stage: str, merge, config_source: str, options, name: str = "merged VLM") -> None:
    """Turn mergekit's tensors + config into a complete VLM folder, or raise."""
    from mergekit_vlm import hub

    vlm_folder = local_folder(merge.vlm, options, patterns=list(SUPPORT_FILES) + ["*.json", "*.jinja"])
    copied = [n for n in SUPPORT_FILES if os.path.exists(os.path.join(vlm_folder, n))]
    for name in copied:
        shutil.copy2(os.path.join(vlm_folder, name), os.path.join(stage, name))

    written = output_tensors(stage)
    expected = output_tensors(vlm_folder)
    missing, unexpected = sorted(set(expected) - set(written)), sorted(set(written) - set(expected))
    if missing or unexpected:
        raise MergekitVlmError(
            f"merge output does not match {merge.vlm}'s tensors (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); nothing was written to the output path"
        )
    _record_dtype(stage, written)

    with open(os.path.join(stage, "mergekit_config.yml"), "w", encoding="utf-8") as fp:
        fp.write(config_source)
    with open(os.path.join(stage, "README.md"), "w", encoding="utf-8") as fp:
        fp.write(hub.model_card(merge, config_source, name=name))
    LOG.info("VLM output complete: %d tensors, support files %s", len(written), ", ".join(copied))


def _record_dtype(stage: str, tensors: Dict[str, Dict]) -> None:
    """config.json's dtype says what the floating-point tensors were written as."""
    dtypes = {_SAFETENSORS_DTYPES[v["dtype"]] for v in tensors.values() if v["dtype"] in _SAFETENSORS_DTYPES}
    path = os.path.join(stage, "config.json")
    with open(path, encoding="utf-8") as fp:
        config = json.load(fp)
    if len(dtypes) == 1:
        dtype = dtypes.pop()
        config["dtype"] = dtype
        for key in ("text_config", "vision_config"):
            if isinstance(config.get(key), dict) and "dtype" in config[key]:
                config[key]["dtype"] = dtype
        config.pop("torch_dtype", None)
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(config, fp, indent=2, sort_keys=True)
            fp.write("\n")


