"""``mergekit-vlm demo``: the whole product on a tiny, offline trio in under a minute.

Builds a base LLM, a "reasoning" fine-tune of it and a LLaVA whose language tower is another
fine-tune of the same base (mergekit_vlm.factory), runs the demo recipe through mergekit's own
``run_merge`` (the code path of ``mergekit-yaml``), checks the merged tower against the paper's
formula, and answers one image prompt with the merged model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import yaml

DEMO_RECIPE = "demo_tiny_llava.yml"
LAMBDA = 0.9


def recipes_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "recipes", here.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("mergekit-vlm recipes not found next to the package")


def demo_recipe(models: Path) -> str:
    """The shipped demo recipe with its model names pointed at the built folders."""
    recipe = yaml.safe_load((recipes_dir() / DEMO_RECIPE).read_text())
    for entry in recipe["models"]:
        entry["model"] = str(models / entry["model"])
    return yaml.safe_dump(recipe, sort_keys=False)


def run_demo(out: Path, echo: Callable[[str], None] = print) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from mergekit_vlm import factory
    from mergekit_vlm.output import output_tensors

    start = time.time()
    transformers.utils.logging.disable_progress_bar()  # per-file bars for kilobyte models are noise
    out = out.resolve()
    trio = factory.build_trio(out / "models", "llava")
    echo(f"built tiny models in {out / 'models'}: base LLM, reasoning LLM (base + delta), LLaVA (base + delta)")

    recipe_text = demo_recipe(out / "models")
    (out / "recipe.yml").write_text(recipe_text)
    merged = out / "merged"
    run_merge(
        MergeConfiguration.model_validate(yaml.safe_load(recipe_text)),
        str(merged),
        MergeOptions(quiet=True),
        config_source=recipe_text,
    )
    echo(f"merged with {out / 'recipe.yml'} (merge_method: borrow_language_tower, λ={LAMBDA}) into {merged}")

    from safetensors.torch import load_file

    got, vlm, llm = (load_file(str(p / "model.safetensors")) for p in (merged, trio.vlm, trio.reasoning))
    tower = [k for k in got if k.startswith("language_model.model.layers.")]
    error = max(
        (got[k] - (LAMBDA * vlm[k] + (1 - LAMBDA) * llm[k.replace("language_model.", "", 1)])).abs().max().item()
        for k in tower
    )
    kept = [k for k in got if not k.startswith("language_model.")]
    identical = all(torch.equal(got[k], vlm[k]) for k in kept)
    echo(
        f"checked: {len(tower)} tower tensors = {LAMBDA}·VLM + {1 - LAMBDA:.1f}·LLM (max error {error:.1e}); "
        f"{len(kept)} vision/projector tensors {'bit-identical to the VLM' if identical else 'CHANGED'}; "
        f"{len(output_tensors(str(merged)))} tensors in total, as in the VLM"
    )

    prompt = "What is 2+3? Answer:"
    answer = factory.generate_from_image(merged, prompt, max_new_tokens=8)
    echo(f"asked the merged VLM about a {factory.IMAGE_SIZE}px image: {prompt!r} -> {answer!r} "
         "(random tiny weights: the text is noise, the pipeline is real)")
    echo(f"done in {time.time() - start:.1f}s; output folder {merged} (config, weights, processor, card)")
    return merged
