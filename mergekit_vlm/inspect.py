"""``mergekit-vlm inspect``: what a set of models is, and whether it can be merged, before merging.

For each model this reads ``config.json``, the safetensors *headers* (never whole checkpoints)
and the tokenizer, and reports its family, checkpoint layout, where the language tower lives,
its decoder geometry and vocabulary. Across the set it checks what a merge needs: one VLM of a
known family (or VLMs of one family), text towers of the same geometry, and how the LLMs'
vocabularies overlap the VLM's by token string.

With a base model it also measures, layer by layer, how far each model's language tower is
from the base's, streaming one tensor pair at a time. Fine-tunes of one ancestor sit at
relative distances of about 0.001-0.05; an unrelated model (another pre-training run, another
family that happens to share the shapes) sits near 1 and merging it produces garbage, which no
config check can see.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mergekit_vlm.borrow import TEXT_DIM_FIELDS
from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.families import TEXT, TEXT_LLM_PREFIXES, family_for_config, is_multimodal_config
from mergekit_vlm.output import read_safetensors_header

# Median per-layer relative distance above which a model is not a fine-tune of the base.
ANCESTRY_THRESHOLD = 0.5
# Above this (but below ANCESTRY_THRESHOLD) the model is a related but heavily trained one.
FAR_FROM_BASE = 0.1
# How many tokens of a one-sided vocabulary difference are listed by name.
LISTED_TOKENS = 10

# What inspect needs from a Hub repository: configs, weights and tokenizer files.
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "merges.txt", "vocab.txt", "*.jinja"]

_SAFETENSORS_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


@dataclass
class VocabOverlap:
    """How a text LLM's tokenizer overlaps the VLM's, by token string."""

    vlm: str  # path of the VLM compared against
    shared: int  # token strings both tokenizers know
    same_id: int  # shared tokens that also have the same id in both
    vlm_only_count: int
    vlm_only: List[str]  # up to LISTED_TOKENS, in VLM id order (e.g. "<image>")
    llm_only_count: int
    llm_only: List[str]  # up to LISTED_TOKENS, in LLM id order


@dataclass
class ModelReport:
    """One model as inspect sees it; fields are None where they could not be determined."""

    path: str  # as given (local folder or Hub id)
    folder: str  # local folder it was read from
    kind: str  # "vlm" | "llm" | "unknown-vlm"
    family: Optional[str]
    architecture: Optional[str]
    layout: Optional[str]  # layout name from the family table (VLMs only)
    tower_prefix: Optional[str]  # tensor-name prefix of the language tower, e.g. "language_model.model."
    num_layers: Optional[int]  # decoder layers found in the checkpoint
    text_dims: Dict[str, Any]  # TEXT_DIM_FIELDS of the (text) config
    vocab_size: Optional[int]  # embedding rows per the (text) config
    tokenizer_size: Optional[int]
    dtype: Optional[str]
    n_tensors: int
    distance: Optional[List[float]] = None  # per-layer relative distance to the base tower
    vocab_overlap: Optional[VocabOverlap] = None  # text LLMs only, against the host VLM

    @property
    def distance_median(self) -> Optional[float]:
        return statistics.median(self.distance) if self.distance else None

    @property
    def distance_max(self) -> Optional[float]:
        return max(self.distance) if self.distance else None


@dataclass
class InspectReport:
    models: List[ModelReport]
    base: Optional[ModelReport]
    mergeable: bool
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


# --- reading one model -------------------------------------------------------------------------


@dataclass
class _Checkpoint:
    """The tensors of a safetensors folder, known from headers and loaded one at a time."""

    shard_of: Dict[str, str] = field(default_factory=dict)  # tensor name -> shard file
    info: Dict[str, Dict] = field(default_factory=dict)  # tensor name -> {dtype, shape, ...}

    @classmethod
    def read(cls, folder: str) -> "_Checkpoint":
        checkpoint = cls()
        for shard in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
            header = read_safetensors_header(shard)
            for name, info in header.items():
                if name != "__metadata__":
                    checkpoint.shard_of[name] = shard
                    checkpoint.info[name] = info
        return checkpoint

    def names(self) -> List[str]:
        return list(self.info)

    def layers(self, prefix: str) -> Dict[int, Dict[str, str]]:
        """layer index -> {name inside the layer -> full tensor name} under ``prefix``layers.N."""
        pattern = re.compile(re.escape(prefix) + r"layers\.(\d+)\.(.+)$")
        out: Dict[int, Dict[str, str]] = {}
        for name in self.info:
            match = pattern.match(name)
            if match:
                out.setdefault(int(match.group(1)), {})[match.group(2)] = name
        return out

    def load(self, name: str):
        from safetensors import safe_open

        # safe_open maps the file and reads only this tensor's bytes.
        with safe_open(self.shard_of[name], framework="pt") as f:
            return f.get_tensor(name)

    def dtype(self) -> Optional[str]:
        stored = {v["dtype"] for v in self.info.values()}
        floats = sorted(_SAFETENSORS_DTYPES[d] for d in stored if d in _SAFETENSORS_DTYPES)
        return "+".join(floats) if floats else None


def _resolve(path: str) -> str:
    """The local folder of a model given as a folder or a Hub id."""
    if os.path.isdir(path):
        folder = path
    elif os.path.exists(path):
        raise MergekitVlmError(f"{path} is a file, not a model folder")
    elif os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1:
        raise MergekitVlmError(f"{path} is not a model folder (no such directory) nor a Hub id (org/name)")
    else:
        from mergekit.common import ModelReference

        from mergekit_vlm.output import local_folder

        try:
            folder = local_folder(ModelReference.parse(path), patterns=HUB_PATTERNS)
        except Exception as err:  # offline, unknown repo, gated...: one line naming the model
            raise MergekitVlmError(f"{path} is not a local folder and could not be fetched from the Hub: {err}")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise MergekitVlmError(f"{path} is not a model folder: no config.json in {folder}")
    return folder


def _text_dims(
    folder: str, raw: Mapping[str, Any], notes: List[str], path: str
) -> Tuple[Dict[str, Any], Optional[int]]:
    """(TEXT_DIM_FIELDS, vocab_size) of the decoder, with transformers' defaults filled in."""
    try:
        from transformers import AutoConfig

        # Through transformers: Hub VLM configs often leave text_config fields at their defaults.
        text = AutoConfig.from_pretrained(folder).get_text_config()
        return {f: getattr(text, f, None) for f in TEXT_DIM_FIELDS}, getattr(text, "vocab_size", None)
    except Exception as err:
        notes.append(f"{path}: transformers could not load its config ({err}); dims read from config.json as is")
    text = raw.get("text_config") or raw
    dims = {f: text.get(f) for f in TEXT_DIM_FIELDS}
    if dims["num_key_value_heads"] is None:
        dims["num_key_value_heads"] = dims["num_attention_heads"]  # no GQA unless stated
    return dims, text.get("vocab_size")


def _vocabulary(folder: str, notes: List[str], path: str) -> Optional[Dict[str, int]]:
    """token string -> id of the model's tokenizer, or None when it has none / cannot load."""
    if not any(
        os.path.exists(os.path.join(folder, name))
        for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    ):
        notes.append(f"{path} has no tokenizer files; vocabulary not checked")
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder).get_vocab()
    except Exception as err:
        notes.append(f"{path}: tokenizer could not be loaded ({err}); vocabulary not checked")
        return None


@dataclass
class _Inspected:
    """A report plus what later checks need but the report does not show."""

    report: ModelReport
    checkpoint: _Checkpoint
    vocab: Optional[Dict[str, int]]
    config_layers: Optional[int]


def _inspect_one(path: str, problems: List[str], notes: List[str]) -> _Inspected:
    folder = _resolve(path)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as fp:
        raw = json.load(fp)
    family = family_for_config(raw)
    kind = "vlm" if family else "unknown-vlm" if is_multimodal_config(raw) else "llm"
    architecture = (raw.get("architectures") or [None])[0]

    try:
        checkpoint = _Checkpoint.read(folder)
    except MergekitVlmError as err:  # a truncated shard: report it, keep inspecting the rest
        problems.append(str(err))
        checkpoint = _Checkpoint()
    names = checkpoint.names()

    layout = tower_prefix = None
    if not names:
        notes.append(f"{path} has no *.safetensors weights; layout, layers and distance not checked")
    elif family is not None:
        layout = family.detect_layout(names)
        if layout is None:
            problems.append(
                f"{path}: tensor names match none of the {family.key} checkpoint layouts "
                f"({', '.join(family.layouts)}); e.g. {names[0]}"
            )
        else:
            tower_prefix = family.layouts[layout][TEXT]
    elif kind == "llm":
        tower_prefix = TEXT_LLM_PREFIXES[TEXT]
        if not checkpoint.layers(tower_prefix):
            notes.append(f"{path}: no decoder layers under {tower_prefix}layers.N; layers and distance not checked")
            tower_prefix = None
    else:
        problems.append(
            f"{path} is a {architecture or raw.get('model_type')}, a vision-language family mergekit-vlm "
            "does not support yet; its language tower cannot be located"
        )

    dims, vocab_size = _text_dims(folder, raw, notes, path)
    vocab = _vocabulary(folder, notes, path)
    layers = checkpoint.layers(tower_prefix) if tower_prefix else {}
    report = ModelReport(
        path=path,
        folder=folder,
        kind=kind,
        family=family.key if family else None,
        architecture=architecture,
        layout=layout,
        tower_prefix=tower_prefix,
        num_layers=len(layers) if layers else None,
        text_dims=dims,
        vocab_size=vocab_size,
        tokenizer_size=len(vocab) if vocab is not None else None,
        dtype=checkpoint.dtype(),
        n_tensors=len(names),
    )
    return _Inspected(report, checkpoint, vocab, dims.get("num_hidden_layers"))


# --- checks across models ----------------------------------------------------------------------


def _check_families(vlms: List[ModelReport], llms: List[ModelReport], problems: List[str]) -> None:
    if not vlms:
        problems.append("no vision-language model among the inputs; mergekit-vlm merges need one")
        return
    families = {m.family for m in vlms if m.family}
    if len(families) > 1:
        listing = ", ".join(f"{m.path} ({m.family})" for m in vlms)
        problems.append(f"cannot merge VLMs of different families: {listing}")
    if len(vlms) > 1 and llms:
        problems.append(
            f"text LLMs can donate to exactly one VLM; found {len(vlms)}: {', '.join(m.path for m in vlms)}"
        )


def _check_dims(host: ModelReport, others: List[ModelReport], problems: List[str]) -> None:
    """Every other model's decoder has the host VLM text tower's geometry."""
    for model in others:
        where = "text_config." if model.kind != "llm" else ""
        for name in TEXT_DIM_FIELDS:
            want, got = host.text_dims.get(name), model.text_dims.get(name)
            if want != got:
                problems.append(
                    f"text tower mismatch in {name}: {model.path} has {where}{name}={got} but the VLM "
                    f"{host.path} has text_config.{name}={want}"
                )


def _check_layer_counts(inspected: List[_Inspected], problems: List[str]) -> None:
    """The checkpoint holds as many decoder layers as its config declares."""
    for item in inspected:
        found, declared = item.report.num_layers, item.config_layers
        if found is not None and declared is not None and found != declared:
            problems.append(
                f"{item.report.path}: config declares num_hidden_layers={declared} but the checkpoint "
                f"has {found} layers under {item.report.tower_prefix}layers.N"
            )


def _overlap(vlm_path: str, vlm_vocab: Dict[str, int], llm_vocab: Dict[str, int]) -> VocabOverlap:
    shared = vlm_vocab.keys() & llm_vocab.keys()
    vlm_only = sorted(vlm_vocab.keys() - shared, key=vlm_vocab.get)
    llm_only = sorted(llm_vocab.keys() - shared, key=llm_vocab.get)
    return VocabOverlap(
        vlm=vlm_path,
        shared=len(shared),
        same_id=sum(vlm_vocab[t] == llm_vocab[t] for t in shared),
        vlm_only_count=len(vlm_only),
        vlm_only=vlm_only[:LISTED_TOKENS],
        llm_only_count=len(llm_only),
        llm_only=llm_only[:LISTED_TOKENS],
    )


def _check_vocabularies(host: _Inspected, llms: List[_Inspected], problems: List[str], notes: List[str]) -> None:
    if host.vocab is None:
        return
    for item in llms:
        if item.vocab is None:
            continue
        overlap = _overlap(host.report.path, host.vocab, item.vocab)
        item.report.vocab_overlap = overlap
        path = item.report.path
        if overlap.shared == 0:
            problems.append(
                f"{path} shares no token string with the VLM {host.report.path}: not the same tokenizer family"
            )
            continue
        if overlap.same_id < overlap.shared:
            notes.append(
                f"{path}: {overlap.shared - overlap.same_id} of {overlap.shared} shared tokens have other ids "
                "than in the VLM; embeddings: vlm keeps the VLM's rows, merge_shared aligns rows by token string"
            )
        if overlap.llm_only_count:
            notes.append(
                f"{path} has {overlap.llm_only_count} tokens the VLM lacks (e.g. {', '.join(overlap.llm_only[:3])}); "
                "the merged model keeps the VLM's vocabulary, so their embeddings are dropped"
            )


def report_path(model: "_Inspected") -> str:
    return model.report.path.rstrip("/")


def _layer_distances(model: _Inspected, base: _Inspected) -> Optional[List[float]]:
    """||θ_L - base_L|| / ||base_L|| per decoder layer, over the tensors both layers share."""
    if not (model.report.tower_prefix and base.report.tower_prefix):
        return None
    ours = model.checkpoint.layers(model.report.tower_prefix)
    theirs = base.checkpoint.layers(base.report.tower_prefix)
    from tqdm.auto import tqdm

    distances = []
    layers = sorted(ours.keys() & theirs.keys())
    # Streams every decoder tensor of both models: minutes for 8B checkpoints, so show progress.
    for index in tqdm(layers, desc=f"distance {os.path.basename(report_path(model))}", unit="layer",
                      disable=len(layers) < 8, leave=False):
        diff_sq = base_sq = 0.0
        for inner, base_name in theirs[index].items():
            name = ours[index].get(inner)
            if name is None or model.checkpoint.info[name]["shape"] != base.checkpoint.info[base_name]["shape"]:
                continue  # a shape mismatch is reported by the dims check
            reference = base.checkpoint.load(base_name).float()
            delta = model.checkpoint.load(name).float() - reference
            diff_sq += float(delta.square().sum())
            base_sq += float(reference.square().sum())
        if base_sq > 0:
            distances.append(math.sqrt(diff_sq / base_sq))
    return distances or None


def _check_ancestry(models: List[_Inspected], base: _Inspected, problems: List[str], notes: List[str]) -> None:
    for item in models:
        report = item.report
        report.distance = _layer_distances(item, base)
        median = report.distance_median
        if median is None:
            notes.append(f"{report.path}: no decoder layer comparable with the base's; distance not measured")
        elif median > ANCESTRY_THRESHOLD:
            problems.append(
                f"{report.path} does not share the base's ancestry (median relative distance {median:.2g} "
                "per layer); merging it yields garbage"
            )
        elif median > FAR_FROM_BASE:
            notes.append(
                f"{report.path} is far from the base (median relative distance {median:.2g} per layer; "
                "fine-tunes are usually below 0.05): check it descends from the base"
            )


def inspect_models(models: List[str], base: Optional[str] = None) -> InspectReport:
    """Inspect ``models`` (local folders or Hub ids) and, with ``base``, their distance to it."""
    if not models:
        raise MergekitVlmError("inspect needs at least one model")
    problems: List[str] = []
    notes: List[str] = []
    inspected = [_inspect_one(path, problems, notes) for path in models]
    base_item = _inspect_one(base, problems, notes) if base is not None else None

    vlms = [i for i in inspected if i.report.kind != "llm"]
    llms = [i for i in inspected if i.report.kind == "llm"]
    _check_families([i.report for i in vlms], [i.report for i in llms], problems)

    # The base may also be listed among the models; check each folder once.
    base_folder = os.path.realpath(base_item.report.folder) if base_item else None
    listed_base = any(os.path.realpath(i.report.folder) == base_folder for i in inspected)
    checked = inspected + ([base_item] if base_item and not listed_base else [])
    _check_layer_counts(checked, problems)

    # The first VLM of a known family hosts the merge: its geometry and vocabulary rule.
    host = next((i for i in vlms if i.report.family), None)
    if host is not None:
        others = [i for i in checked if i is not host]
        _check_dims(host.report, [i.report for i in others], problems)
        _check_vocabularies(host, [i for i in others if i.report.kind == "llm"], problems, notes)
    if base_item is not None:
        compared = [i for i in inspected if os.path.realpath(i.report.folder) != base_folder]
        _check_ancestry(compared, base_item, problems, notes)
        for item in inspected:
            if os.path.realpath(item.report.folder) == base_folder and item.report.num_layers:
                item.report.distance = [0.0] * item.report.num_layers  # the base itself

    return InspectReport(
        models=[i.report for i in inspected],
        base=base_item.report if base_item else None,
        mergeable=not problems,
        problems=problems,
        notes=notes,
    )


# --- presentation ------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def _config_layers_if_different(model: ModelReport) -> str:
    declared = model.text_dims.get("num_hidden_layers")
    return "" if model.num_layers == declared else f" (config: {_fmt(declared)})"


def _rows(model: ModelReport, compared: bool) -> List[Tuple[str, str]]:
    dims = model.text_dims
    kind = model.kind + (f" ({model.architecture})" if model.architecture else "")
    rows = [
        ("kind", kind),
        ("family", _fmt(model.family)),
        ("layout", _fmt(model.layout)),
        ("tower prefix", _fmt(model.tower_prefix)),
        ("layers", _fmt(model.num_layers) + _config_layers_if_different(model)),
        (
            "hidden",
            f"{_fmt(dims.get('hidden_size'))} (heads {_fmt(dims.get('num_attention_heads'))}, "
            f"kv heads {_fmt(dims.get('num_key_value_heads'))}, intermediate {_fmt(dims.get('intermediate_size'))})",
        ),
        ("vocab", f"{_fmt(model.vocab_size)} rows, tokenizer {_fmt(model.tokenizer_size)}"),
        ("dtype", f"{_fmt(model.dtype)}, {model.n_tensors} tensors"),
    ]
    if model.distance:
        rows.append(
            (
                "distance",
                f"median {model.distance_median:.4f}, max {model.distance_max:.4f} "
                f"over {len(model.distance)} layers",
            )
        )
    elif compared:
        rows.append(("distance", "- (not measured, see notes)"))
    overlap = model.vocab_overlap
    if overlap is not None:
        vlm_only = ", ".join(overlap.vlm_only) + (" ..." if overlap.vlm_only_count > len(overlap.vlm_only) else "")
        rows.append(
            (
                "vs VLM vocab",
                f"{overlap.shared} shared ({overlap.same_id} same id), {overlap.llm_only_count} LLM-only, "
                f"{overlap.vlm_only_count} VLM-only" + (f": {vlm_only}" if vlm_only else ""),
            )
        )
    return rows


def format_report(report: InspectReport) -> str:
    """The report as aligned text blocks, one per model, then problems and notes."""
    blocks = [(m, m.kind) for m in report.models]
    if report.base is not None:
        blocks.append((report.base, "base"))
    lines: List[str] = []
    for model, role in blocks:
        lines.append(f"{role}: {model.path}")
        rows = _rows(model, compared=report.base is not None and role != "base")
        width = max(len(label) for label, _ in rows)
        lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
        lines.append("")
    lines.extend(f"PROBLEM: {p}" for p in report.problems)
    lines.extend(f"note: {n}" for n in report.notes)
    lines.append("mergeable: " + ("yes" if report.mergeable else f"no ({len(report.problems)} problem(s))"))
    return "\n".join(lines)


def _model_json(model: ModelReport) -> Dict[str, Any]:
    out = dataclasses.asdict(model)
    out["distance_median"] = model.distance_median
    out["distance_max"] = model.distance_max
    return out


def report_to_json(report: InspectReport) -> Dict[str, Any]:
    """The report as plain JSON types (for ``inspect --json``)."""
    return {
        "models": [_model_json(m) for m in report.models],
        "base": _model_json(report.base) if report.base else None,
        "mergeable": report.mergeable,
        "problems": list(report.problems),
        "notes": list(report.notes),
    }
