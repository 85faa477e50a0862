"""Write the mergekit JSON architecture definitions of every family in mergekit_vlm.families.

The JSON files are the shipped, upstreamable artefact (mergekit's own schema); this script is
how they are kept consistent with the family table. A test fails when they drift:

    python architectures/generate.py
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mergekit_vlm.families import FAMILIES, LM_HEAD, TEXT, TEXT_LLM_PREFIXES, VlmFamily  # noqa: E402

LAYER = "${layer_index}"


def _w(name: str, **extra) -> Dict:
    return {"name": name, **extra}


# Weight lists per component, relative to the component's prefix. "layers" entries are
# per-layer suffixes under the component's layer path; "num_layers_config_key" says how
# many layers the component has (mergekit reads it from the VLM's config).
_DECODER_LAYER = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    _w("self_attn.q_proj.bias", optional=True),  # Qwen2-style decoders only
    _w("self_attn.k_proj.bias", optional=True),
    _w("self_attn.v_proj.bias", optional=True),
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
]
_VIT_LAYER = [
    f"{part}.{p}"
    for part in (
        "layer_norm1",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "layer_norm2",
        "mlp.fc1",
        "mlp.fc2",
    )
    for p in ("weight", "bias")
]

COMPONENT_TEMPLATES: Dict[str, Dict] = {
    "clip_vision": {
        "model_type": "clip_vision_model",
        "pre": [
            "embeddings.class_embedding",
            "embeddings.patch_embedding.weight",
            "embeddings.position_embedding.weight",
            "pre_layrnorm.weight",
            "pre_layrnorm.bias",
        ],
        "layer_path": "encoder.layers.",
        "layers": _VIT_LAYER,
        # Unused by LLaVA (it reads a hidden state) but present in most checkpoints.
        "post": [_w("post_layernorm.weight", optional=True), _w("post_layernorm.bias", optional=True)],
        "num_layers_config_key": "vision_config.num_hidden_layers",
    },
    "llava_projector": {
        "model_type": "",
        "pre": [
            "linear_1.weight",
            _w("linear_1.bias", optional=True),  # multimodal_projector_bias=False drops them
            "linear_2.weight",
            _w("linear_2.bias", optional=True),
        ],
    },
    "image_newline": {"model_type": "", "pre": ["image_newline"]},
    "idefics2_vision": {
        "model_type": "idefics2_vision",
        "pre": [
            "embeddings.patch_embedding.weight",
            "embeddings.patch_embedding.bias",
            "embeddings.position_embedding.weight",
        ],
        "layer_path": "encoder.layers.",
        "layers": _VIT_LAYER,
        "post": ["post_layernorm.weight", "post_layernorm.bias"],
        "num_layers_config_key": "vision_config.num_hidden_layers",
    },
    "idefics2_connector": {
        "model_type": "idefics2_perceiver",
        "pre": [
            "modality_projection.gate_proj.weight",
            "modality_projection.up_proj.weight",
            "modality_projection.down_proj.weight",
            "perceiver_resampler.latents",
        ],
        # The perceiver's own attention/MLP: same suffixes as a decoder layer, NOT the tower.
        "layer_path": "perceiver_resampler.layers.",
        "layers": [
            "input_latents_norm.weight",
            "input_context_norm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "post_attention_layernorm.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
        ],
        "post": ["perceiver_resampler.norm.weight"],
        "num_layers_config_key": "perceiver_config.resampler_depth",
    },
}


def _weight(entry, prefixes: List[str], path: str = "", **extra) -> Dict:
    """A WeightInfo dict: canonical name under prefixes[0], the other prefixes as aliases."""
    spec = _w(entry) if isinstance(entry, str) else dict(entry)
    suffix = spec.pop("name")
    names = [p + path + suffix for p in prefixes]
    out = {"name": names[0], **extra, **spec}
    if len(names) > 1:
        out["aliases"] = names[1:]
    return out


def _module(model_type: str, pre, layers=None, post=(), num_layers_key: Optional[str] = None) -> Dict:
    arch = {
        "model_type": model_type,
        "architectures": [],
        "pre_weights": pre,
        "layer_templates": {"weights": layers or []},
        "post_weights": list(post),
    }
    if num_layers_key:
        arch["num_layers_config_key"] = num_layers_key
    else:
        arch["override_num_layers"] = 0
    return {"architecture": arch}


def language_model_module(family: VlmFamily) -> Dict:
    """The language tower; every name also aliases the text LLM's own name for the tensor."""
    text = list(family.prefixes(TEXT)) + [TEXT_LLM_PREFIXES[TEXT]]
    head = list(family.prefixes(LM_HEAD)) + [TEXT_LLM_PREFIXES[LM_HEAD]]
    head = list(dict.fromkeys(head))
    embed = _weight("embed_tokens.weight", text, vocabulary_axis=0)
    lm_head = _weight(
        "lm_head.weight",
        head,
        vocabulary_axis=0,
        optional=True,  # tied-embedding checkpoints do not store it
        tied_names=[embed["name"]] + embed["aliases"],
    )
    return _module(
        family.text_model_types[0],
        pre=[embed],
        layers=[_weight(e, text, f"layers.{LAYER}.") for e in _DECODER_LAYER],
        post=[_weight("norm.weight", text), lm_head],
        num_layers_key="text_config.num_hidden_layers",
    )


def component_module(family: VlmFamily, component: str) -> Dict:
    tpl = COMPONENT_TEMPLATES[component]
    prefixes = list(family.prefixes(component))
    layer_path = tpl.get("layer_path", "") + LAYER + "."
    return _module(
        tpl["model_type"],
        pre=[_weight(e, prefixes) for e in tpl["pre"]],
        layers=[_weight(e, prefixes, layer_path) for e in tpl.get("layers", [])],
        post=[_weight(e, prefixes) for e in tpl.get("post", [])],
        num_layers_key=tpl.get("num_layers_config_key"),
    )


def architecture_definition(family: VlmFamily) -> Dict:
    modules = {"language_model": language_model_module(family)}
    for component in family.vision_components:
        modules[component] = component_module(family, component)
    return {
        "kind": "modular",
        "architectures": list(family.architectures),
        "model_type": family.model_type,
        "tagalong_files": list(family.tagalong_files),
        "vocab_size_config_key": "text_config.vocab_size",
        "modules": modules,
    }


def render(family: VlmFamily) -> str:
    return json.dumps(architecture_definition(family), indent=2) + "\n"


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for family in FAMILIES:
        path = os.path.join(here, family.architecture_json)
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(render(family))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
