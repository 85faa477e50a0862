"""Model cards for merged VLMs, in the metadata the Hugging Face Hub indexes."""

from __future__ import annotations

import os
from typing import List

from huggingface_hub import ModelCard, ModelCardData

CARD_TEMPLATE = """
# {name}

A vision-language model whose language tower was merged with a text LLM by mergekit-vlm, a
plugin of [mergekit](https://github.com/arcee-ai/mergekit),
following *Bring Reason to Vision* (Chen et al., ICML 2025, arXiv:2505.05464).

- Host VLM (vision tower, projector, tokenizer, processor kept): `{vlm}`
- Language-tower donors: {donors}
- Shared base LLM: {base}
- Language-tower method: `{tower_method}`; embeddings: `{embeddings}`

Everything outside the language tower is the host VLM's, bit for bit.

## Recipe

```yaml
{recipe}
```
"""


def _card_id(model) -> str:
    """How a parent is named in metadata: its Hub id, or its local folder as given."""
    path = model.model.path
    return os.path.normpath(path) if os.path.isdir(path) else path


def model_card(merge, config_source: str, name: str = "merged VLM") -> str:
    parents: List[str] = [_card_id(merge.vlm)] + [_card_id(m) for m in merge.donors]
    if not merge.cross_modal:
        parents = [_card_id(m) for m in merge.vlms]
    data = ModelCardData(
        base_model=parents,
        base_model_relation="merge",
        pipeline_tag="image-text-to-text",
        library_name="transformers",
        tags=["mergekit", "merge", "mergekit-vlm", "vision-language", merge.family.model_type],
    )
    body = CARD_TEMPLATE.format(
        name=name,
        vlm=_card_id(merge.vlm),
        donors=", ".join(f"`{_card_id(m)}`" for m in merge.donors) or "none (VLMs merged whole)",
        base=f"`{_card_id(merge.base_model)}`" if merge.base_model else "none",
        tower_method=merge.tower_method,
        embeddings=merge.embeddings,
        recipe=config_source.strip(),
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
