"""Shared fixtures: tiny real models built once per session, and an in-process merge helper."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402
from typing import Dict  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from mergekit_vlm import factory  # noqa: E402


class TrioCache:
    """build_trio on demand, once per (family, layout, options) for the whole session."""

    def __init__(self, root: Path):
        self.root = root
        self._built: Dict[tuple, factory.Trio] = {}

    def __call__(self, family="llava", layout="transformers5", **options) -> factory.Trio:
        key = (family, layout, tuple(sorted(options.items())))
        if key not in self._built:
            name = "-".join([family, layout] + [f"{k}={v}" for k, v in sorted(options.items())])
            self._built[key] = factory.build_trio(self.root / name, family, layout=layout, **options)
        return self._built[key]


@pytest.fixture(scope="session")
def trios(tmp_path_factory) -> TrioCache:
    return TrioCache(tmp_path_factory.mktemp("trios"))


def run_recipe(recipe: dict, out: Path, **options) -> Path:
    """Merge through the public mergekit API, exactly as mergekit-yaml does."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    source = yaml.safe_dump(recipe)
    run_merge(
        MergeConfiguration.model_validate(yaml.safe_load(source)),
        str(out),
        MergeOptions(quiet=True, **options),
        config_source=source,
    )
    return out


def tensors(folder) -> Dict[str, torch.Tensor]:
    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(path)))
    return out


def linear_recipe(vlm, llm, weight=0.9, **extra) -> dict:
    return {
        "merge_method": "borrow_language_tower",
        "models": [
            {"model": str(vlm), "parameters": {"weight": weight}},
            {"model": str(llm), "parameters": {"weight": round(1 - weight, 6)}},
        ],
        "dtype": "float32",
        **extra,
    }
