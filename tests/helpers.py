"""Name mapping between a VLM checkpoint and its text LLM, written independently of the plugin."""

import re

from mergekit_vlm.families import TEXT, family_for_folder

LAYER_RE = re.compile(r"layers\.(\d+)\.(.*)$")


def tower_key_to_llm(vlm_folder, key: str):
    """The text-LLM name of a VLM tensor if it belongs to the language tower, else None."""
    family = family_for_folder(str(vlm_folder))
    for prefix in family.prefixes(TEXT):
        if key.startswith(prefix):
            return "model." + key[len(prefix):]
    if key in ("lm_head.weight", "language_model.lm_head.weight"):
        return "lm_head.weight"
    return None


def is_decoder(key_llm: str) -> bool:
    return key_llm.startswith("model.layers.") or key_llm == "model.norm.weight"
