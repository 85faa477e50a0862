"""The one table of vision-language model families mergekit-vlm understands.

Everything that depends on a family (how to recognise it, where its language tower lives
in each checkpoint layout, which text LLMs it pairs with) is read from here. The JSON
architecture definitions in ``architectures/`` are generated from this table, so a new
family or layout is one entry here plus ``python architectures/generate.py``.

Checkpoint layouts
------------------
The same model is stored under different tensor names depending on who wrote it:

* ``hub4``: Hub checkpoints written by transformers 4.x (what users download);
* ``transformers5``: what ``save_pretrained`` writes under transformers 5 (legacy text
  names, but a CLIP tower without its ``vision_model.`` level);
* ``v5_memory``: transformers 5 in-memory names (``model.language_model.layers.N``),
  which some tools save as-is and transformers loads back;
* ``v4_memory``: transformers 4.5x in-memory names (``model.vision_tower.vision_model``).

A layout maps each *component* of the model to its tensor-name prefix. The first layout of
a family gives the canonical names of its JSON definition; the others become aliases.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

# Component names used in layouts.
TEXT = "text"  # decoder: embed_tokens, layers.N, norm
LM_HEAD = "lm_head"  # the output projection (absent when tied)

# Where a text LLM (LlamaForCausalLM, MistralForCausalLM, ...) keeps the same tensors.
TEXT_LLM_PREFIXES = {TEXT: "model.", LM_HEAD: ""}


@dataclass(frozen=True)
class VlmFamily:
    """One VLM family: recognition, layouts and which vision components it carries."""

    key: str
    architectures: Tuple[str, ...]
    model_type: str
    text_model_types: Tuple[str, ...]
    layouts: Mapping[str, Mapping[str, str]]
    vision_components: Tuple[str, ...]  # keys of COMPONENT_TEMPLATES in architectures/generate.py
    tagalong_files: Tuple[str, ...] = ("preprocessor_config.json", "processor_config.json")
    notes: str = ""

    @property
    def architecture_json(self) -> str:
        return f"{self.key}.json"

    def prefixes(self, component: str) -> Tuple[str, ...]:
        """All prefixes a component may carry, canonical first, without duplicates."""
        seen: Dict[str, None] = {}
        for layout in self.layouts.values():
            if component in layout:
                seen.setdefault(layout[component], None)
        return tuple(seen)

    def detect_layout(self, tensor_names) -> Optional[str]:
        """Name of the first layout whose text and vision prefixes occur in the checkpoint.

        Layouts are ordered most specific prefix first, so the first match is the right one.
        """
        names = tuple(tensor_names)
        for layout_name, layout in self.layouts.items():
            if all(
                any(n.startswith(prefix) for n in names)
                for comp, prefix in layout.items()
                if comp in (TEXT,) + self.vision_components[:1]
            ):
                return layout_name
        return None


_CLIP_LLAVA_LAYOUTS = {
    "hub4": {
        TEXT: "language_model.model.",
        LM_HEAD: "language_model.",
        "clip_vision": "vision_tower.vision_model.",
        "llava_projector": "multi_modal_projector.",
        "image_newline": "",
    },
    "transformers5": {
        TEXT: "language_model.model.",
        LM_HEAD: "language_model.",
        "clip_vision": "vision_tower.",
        "llava_projector": "multi_modal_projector.",
        "image_newline": "",
    },
    # v4_memory before v5_memory: its vision prefix is the more specific one.
    "v4_memory": {
        TEXT: "model.language_model.",
        LM_HEAD: "",
        "clip_vision": "model.vision_tower.vision_model.",
        "llava_projector": "model.multi_modal_projector.",
        "image_newline": "model.",
    },
    "v5_memory": {
        TEXT: "model.language_model.",
        LM_HEAD: "",
        "clip_vision": "model.vision_tower.",
        "llava_projector": "model.multi_modal_projector.",
        "image_newline": "model.",
    },
}

FAMILIES: Tuple[VlmFamily, ...] = (
    VlmFamily(
        key="llava",
        architectures=("LlavaForConditionalGeneration",),
        model_type="llava",
        text_model_types=("llama", "mistral", "qwen2"),
        layouts=_CLIP_LLAVA_LAYOUTS,
        vision_components=("clip_vision", "llava_projector"),
        notes="LLaVA-1.5 style: CLIP tower, two-layer projector.",
    ),
    VlmFamily(
        key="llava_next",
        architectures=("LlavaNextForConditionalGeneration",),
        model_type="llava_next",
        text_model_types=("llama", "mistral", "qwen2"),
        layouts=_CLIP_LLAVA_LAYOUTS,
        vision_components=("clip_vision", "llava_projector", "image_newline"),
        notes="LLaVA-NeXT (e.g. llava-hf/llama3-llava-next-8b-hf): LLaVA plus image_newline.",
    ),
    VlmFamily(
        key="idefics2",
        architectures=("Idefics2ForConditionalGeneration",),
        model_type="idefics2",
        text_model_types=("mistral", "llama"),
        layouts={
            # Idefics2 kept the same names across transformers 4.x and 5.
            "hub4": {
                TEXT: "model.text_model.",
                LM_HEAD: "",
                "idefics2_vision": "model.vision_model.",
                "idefics2_connector": "model.connector.",
            },
        },
        vision_components=("idefics2_vision", "idefics2_connector"),
        notes="Idefics2: SigLIP-style tower, perceiver resampler connector (its own "
        "self_attn/mlp are not part of the language tower).",
    ),
)

_BY_ARCHITECTURE = {arch: fam for fam in FAMILIES for arch in fam.architectures}


def family_for_config(config) -> Optional[VlmFamily]:
    """The family of a transformers config (object or dict), or None for non-VLMs."""
    architectures = (
        config.get("architectures") if isinstance(config, Mapping) else getattr(config, "architectures", None)
    ) or ()
    for arch in architectures:
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch]
    return None


def family_for_folder(path: str) -> Optional[VlmFamily]:
    with open(os.path.join(path, "config.json"), encoding="utf-8") as fp:
        return family_for_config(json.load(fp))


def is_multimodal_config(config) -> bool:
    """True for any config carrying a vision part, known family or not."""
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k, None)
    return bool(get("vision_config") or get("visual")) or family_for_config(config) is not None


def architectures_dir() -> str:
    """The folder of JSON definitions: shipped inside the wheel, or the repo's in a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "architectures"), os.path.join(os.path.dirname(here), "architectures")):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError("mergekit-vlm architecture definitions not found next to the package")
