"""Judge-free math/vision benchmarks for ``mergekit-vlm eval``: data, prompts and gold answers.

A benchmark is rows in the schema its Hub dataset has, the prompt built from each row, and a
rule-based scorer (:func:`mergekit_vlm.evaluate.scoring.score`, keyed by the benchmark name).
``Benchmark.load`` turns rows into :class:`Item` objects; the runner shows the model
``item.images`` then ``item.prompt`` and scores the response against ``item.row``.

=============  ============================  ===================================  ==========================
name           Hub dataset                   splits (default first)               subsets
=============  ============================  ===================================  ==========================
mathvista      AI4Math/MathVista             testmini (1000), test                category, task, skills
mathverse      AI4Math/MathVerse             testmini (3940 = 788 x 5 versions),  version, subject, subfield
                                             testmini_text_only (788)
mathvision     MathLLMs/MathVision           testmini (304), test (3040)          subject, level
dynamath       DynaMath/DynaMath_Sample      all (the 10 below, 5010),            variant, subject,
                                             sample_variant1 .. sample_variant10  knowledge_level, answer_type
mmstar         Lin-Chen/MMStar               val (1500)                           category, l2_category
gsm8k          openai/gsm8k (config main)    test (1319), train                   (none; text only)
custom         (your own file, see below)    any                                  subset
=============  ============================  ===================================  ==========================

Where the data comes from (``data`` argument, ``--data NAME=...``):

* ``None``: ``datasets.load_dataset(hub_id, config, split=...)`` (needs the network or the HF cache);
* a Hub dataset id (``owner/name``) of a mirror in the same schema;
* a local Hub snapshot folder (``huggingface-cli download --repo-type dataset ... --local-dir``):
  the split's files are found through the ``configs:`` of its README.md, as the Hub does, or
  else by name (``data/testmini-*.parquet``, ``testmini.parquet``, ``main/test-*.parquet``);
* a ``.parquet``, ``.jsonl`` or ``.json`` file, or a folder of them (read whole when no file
  is named after a split);
* a ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` folder (``state.json`` /
  ``dataset_dict.json``), read with ``datasets.load_from_disk``.

Images may be HF ``Image`` values (``{"bytes": ..., "path": ...}``), PIL images, raw bytes or
paths; relative paths resolve against the folder of the data file.

DynaMath's ``all`` split loads the ten variant splits and orders items seed by seed (seed 1
variants 1..10, seed 2 ...), so ``limit`` keeps whole seeds and worst-case accuracy
(:func:`dynamath_worst_case`) stays meaningful. A source that is not split-aware (one file
holding every variant) numbers a seed's variants in the order its rows appear.

Custom format (``--bench custom --data custom=PATH``)
-----------------------------------------------------
PATH is a ``.jsonl`` file (or a folder holding ``data.jsonl``; parquet works too), one object
per line::

    {"id": "q1", "question": "What is the area of the square?", "image": "images/q1.png",
     "answer": "16", "answer_type": "number", "subset": "geometry"}
    {"id": "q2", "question": "Which shape is red?", "images": ["a.png", "b.png"],
     "choices": ["circle", "square"], "answer": "B", "answer_type": "multiple_choice"}

* ``question`` and ``answer`` are required; ``id`` defaults to the line number (from 0);
* ``image`` (one path) or ``images`` (a list), relative to the file; omit both for text only;
* ``choices``: the options, shown as (A), (B), ...; ``answer`` is then a letter or an option text;
* ``answer_type``: ``multiple_choice`` | ``number`` | ``expression`` | ``text``; when absent it is
  ``multiple_choice`` with choices, else ``number`` when the answer is a number, else ``expression``;
* ``subset``: a label to break accuracy down by.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from mergekit_vlm.errors import MergekitVlmError

# Instructions appended to questions that carry none of their own.
MCQ_DIRECT = "Answer with the option's letter from the given choices directly."
MCQ_BOXED = "Solve the problem step by step, then put the letter of the correct option in \\boxed{}."
FREE_BOXED = "Solve the problem step by step, then put your final answer in \\boxed{}."

LETTERS = "ABCDEFGHIJKLMNOP"
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")
# Files of save_to_disk / Hub snapshots that are metadata, never rows.
_NOT_DATA = {"dataset_info.json", "dataset_infos.json", "state.json", "dataset_dict.json"}


@dataclass
class Item:
    benchmark: str  # e.g. "mathvista"
    id: str  # stable id, unique within the benchmark split
    row: dict  # the Hub row as loaded, image columns removed (JSON-serialisable)
    images: list  # PIL.Image.Image objects (may be empty)
    prompt: str  # the text the model sees after the image(s)
    gold: str  # gold answer as a display string
    subsets: dict = field(default_factory=dict)  # key -> label (or list of labels: counted under each)


# ---------------------------------------------------------------------------------------
# Data sources
# ---------------------------------------------------------------------------------------


@dataclass
class _Rows:
    rows: List[dict]
    source: str  # file, folder or Hub id, for messages
    base: Optional[Path]  # where relative image paths resolve
    split_aware: bool  # False: the rows were not selected by split (one file, one Dataset)


def load_rows(
    data: Optional[str],
    hub_id: Optional[str],
    split: str,
    *,
    config: Optional[str] = None,
    limit: Optional[int] = None,
) -> List[dict]:
    """The rows of ``split`` from ``data`` (see the module docstring) or, when ``data`` is
    None, from the Hub dataset ``hub_id``. Image values are left encoded (HF ``Image`` dicts)."""
    return _load_split(data, hub_id, split, config=config, limit=limit).rows


def _load_split(data, hub_id, split, *, config=None, limit=None) -> _Rows:
    if data is None:
        if not hub_id:
            raise MergekitVlmError("no data given: pass a file or folder with --data NAME=PATH")
        return _from_hub(hub_id, config, split, limit)
    path = Path(str(data)).expanduser()
    if path.exists():
        return _from_local(path, split, config, limit)
    looks_like_repo = re.fullmatch(r"[\w.-]+/[\w.-]+", str(data)) and not str(data).startswith(".")
    if looks_like_repo and path.suffix not in DATA_SUFFIXES:
        return _from_hub(str(data), config, split, limit, note=" (and it is no local file or folder)")
    raise MergekitVlmError(f"{data}: no such file or folder (nor a Hub dataset id like owner/name)")


def _from_hub(repo: str, config: Optional[str], split: str, limit, note: str = "") -> _Rows:
    import datasets

    try:
        ds = datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # offline, gated, wrong split ...: one line, with what was asked
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise MergekitVlmError(
            f"cannot load {repo} (config {config or 'default'}, split {split}){note}: {first}"
        ) from None
    return _Rows(_dataset_rows(ds, limit), repo, None, True)


def _dataset_rows(ds, limit) -> List[dict]:
    """A ``datasets.Dataset`` as plain dicts; images stay encoded so nothing is decoded
    before it is needed (and only the first ``limit`` rows are touched)."""
    import datasets

    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds.to_list()


def _from_local(path: Path, split: str, config: Optional[str], limit) -> _Rows:
    if path.is_file():
        return _Rows(_read_files([path], limit), str(path), path.parent, False)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _from_disk(path, split, limit)
    files, split_aware = _split_files(path, split, config)
    return _Rows(_read_files(files, limit), str(path), path, split_aware)


def _from_disk(path: Path, split: str, limit) -> _Rows:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise MergekitVlmError(f"{path}: no split {split!r} in this saved DatasetDict (it has {', '.join(ds)})")
        return _Rows(_dataset_rows(ds[split], limit), str(path), path, True)
    return _Rows(_dataset_rows(ds, limit), str(path), path, False)


def _data_files(folder: Path) -> List[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):  # .cache/ of huggingface-cli, .git/
            continue
        if p.is_file() and p.suffix in DATA_SUFFIXES and p.name not in _NOT_DATA:
            out.append(p)
    return out


def _prefer_parquet(files: List[Path]) -> List[Path]:
    # Snapshots such as MathVerse ship testmini.parquet next to testmini.json: one copy only.
    for suffix in DATA_SUFFIXES:
        chosen = [f for f in files if f.suffix == suffix]
        if chosen:
            return chosen
    return []


def _split_files(folder: Path, split: str, config: Optional[str]) -> Tuple[List[Path], bool]:
    """The files holding ``split`` in a folder, and whether they were chosen by split."""
    declared = _readme_split_files(folder, split, config)
    if declared is not None:
        if not declared:
            raise MergekitVlmError(f"{folder}: README.md declares split {split!r} but none of its files are there")
        return declared, True
    files = _data_files(folder)
    if not files:
        raise MergekitVlmError(f"{folder}: no .parquet, .jsonl or .json data files in this folder")

    def named_after_split(p: Path) -> bool:
        stem = p.name[: -len(p.suffix)]
        return stem == split or stem.startswith(split + "-") or p.parent.name == split

    matched = [f for f in files if named_after_split(f)]
    if config and any(config in f.relative_to(folder).parts[:-1] for f in matched):
        matched = [f for f in matched if config in f.relative_to(folder).parts[:-1]]  # gsm8k: main/ vs socratic/
    if matched:
        return _prefer_parquet(matched), True
    # No file is named after the split: one file, or shards that name no split, are the data.
    if len(files) == 1 or not any(re.search(r"train|test|val|dev", f.name, re.I) for f in files):
        return _prefer_parquet(files), False
    names = ", ".join(str(f.relative_to(folder)) for f in files[:8])
    raise MergekitVlmError(f"{folder}: no data file for split {split!r} (found {names})")


def _readme_split_files(folder: Path, split: str, config: Optional[str]) -> Optional[List[Path]]:
    """Files for ``split`` per the ``configs:`` block of a Hub README, None if it declares none."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    import yaml

    m = re.match(r"---\s*\n(.*?)\n---\s*(?:\n|$)", readme.read_text(encoding="utf-8", errors="replace"), re.S)
    try:
        meta = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError:
        return None
    configs = [c for c in (meta or {}).get("configs") or [] if isinstance(c, dict)] if isinstance(meta, dict) else []
    if not configs:
        return None
    # The asked config first, then the default one, then every other declaring the split.
    ordered = [c for c in configs if config and c.get("config_name") == config]
    ordered += [c for c in configs if c.get("default")] + [c for c in configs if c.get("config_name") == "default"]
    ordered += configs
    for cfg in ordered:
        for entry in _data_file_entries(cfg.get("data_files")):
            if entry.get("split") == split:
                patterns = entry.get("path")
                patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
                found = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
                return _prefer_parquet(found) if found else []
    return None


def _data_file_entries(data_files: Any) -> List[dict]:
    if isinstance(data_files, list) and data_files and isinstance(data_files[0], dict):
        return [e for e in data_files if isinstance(e, dict)]
    if isinstance(data_files, (str, list)):
        return [{"split": "train", "path": data_files}]  # the Hub's meaning of a bare path list
    if isinstance(data_files, dict):
        return [{"split": k, "path": v} for k, v in data_files.items()]
    return []


def _read_files(files: Iterable[Path], limit: Optional[int]) -> List[dict]:
    rows: List[dict] = []
    for path in files:
        if limit is not None and len(rows) >= limit:
            break
        rows.extend(_read_file(path, None if limit is None else limit - len(rows)))
    return rows


def _read_file(path: Path, limit: Optional[int]) -> List[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows: List[dict] = []
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=256):  # no need to read it all for --limit
                rows.extend(batch.to_pylist())
                if limit is not None and len(rows) >= limit:
                    break
        except Exception as e:
            raise MergekitVlmError(f"{path}: not a readable parquet file ({e})") from None
        return rows if limit is None else rows[:limit]
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if limit is not None and len(rows) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise MergekitVlmError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise MergekitVlmError(f"{path}:{lineno}: expected a JSON object per line")
                rows.append(row)
        return rows
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MergekitVlmError(f"{path}: not valid JSON ({e.msg})") from None
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        obj = list(obj.values())  # MathVista's annot_testmini.json: {pid: row}
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise MergekitVlmError(f"{path}: expected a JSON list of objects")
    return obj if limit is None else obj[:limit]


# ---------------------------------------------------------------------------------------
# Rows -> items
# ---------------------------------------------------------------------------------------


def _is_image_value(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, PILImage.Image)) or (isinstance(value, Mapping) and "bytes" in value)


def _holds_images(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_image_value(v) for v in value)
    return _is_image_value(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if not _is_image_value(v)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value if not _is_image_value(v)]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN precision from pandas-written parquet
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return str(value)


def open_image(value: Any, base: Optional[Path] = None, where: str = ""):
    """A PIL image from an HF Image dict, a PIL image, bytes or a path (relative to ``base``);
    None for an empty value. Decoding stays lazy: only the encoded bytes are held."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, PILImage.Image):
        return value
    data = None
    if isinstance(value, Mapping):
        if value.get("bytes"):
            data = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            return None
    if isinstance(value, (bytes, bytearray)):
        data = value
    if data is None:
        if not isinstance(value, str):
            raise MergekitVlmError(f"{where}: cannot read an image from a {type(value).__name__}")
        path = Path(value).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise MergekitVlmError(f"{where}: image {value} not found (looked for {path})")
        data = path.read_bytes()  # read now: 1000 open file handles would be worse
    try:
        return PILImage.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as e:
        raise MergekitVlmError(f"{where}: not a readable image ({e})") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _mcq_gold(letter: Optional[str], text: Optional[str]) -> str:
    if letter and text and text.strip() and text.strip() != letter:
        return f"{letter} ({text.strip()})"
    return letter or _text(text)


def format_choices(choices: Sequence[Any]) -> str:
    return "\n".join(f"({LETTERS[i]}) {_text(c)}" for i, c in enumerate(choices))


class Benchmark:
    """One benchmark: where its data is, how a row becomes a prompt, and its gold answer."""

    name: str = ""
    hub_id: Optional[str] = None
    config: Optional[str] = None  # Hub config passed to load_dataset
    default_split: str = ""
    splits: Tuple[str, ...] = ()  # () = any split name
    required_columns: Tuple[str, ...] = ()
    image_columns: Tuple[str, ...] = ()  # priority order; the first non-empty one is used
    images_required = True  # one of image_columns must exist (when there are any)

    def subset_keys(self) -> Tuple[str, ...]:
        return ()

    def hub_config(self, split: str) -> Optional[str]:
        return self.config

    def load(self, data: Optional[str] = None, split: Optional[str] = None, limit: Optional[int] = None) -> List[Item]:
        split = self._check_split(split)
        if limit is not None and limit <= 0:
            return []
        loaded = _load_split(data, self.hub_id, split, config=self.hub_config(split), limit=limit)
        return self._items(loaded, split)

    # -- helpers shared by the subclasses --

    def _check_split(self, split: Optional[str]) -> str:
        split = split or self.default_split
        if self.splits and split not in self.splits:
            raise MergekitVlmError(f"{self.name}: unknown split {split!r}; use one of {', '.join(self.splits)}")
        return split

    def _items(self, loaded: _Rows, split: str) -> List[Item]:
        self._check_columns(loaded)
        return [self._item(row, i, split, loaded) for i, row in enumerate(loaded.rows)]

    def _check_columns(self, loaded: _Rows) -> None:
        missing = [c for c in self.required_columns if any(c not in row for row in loaded.rows)]
        needs_images = self.images_required and self.image_columns and loaded.rows
        if needs_images and not any(c in loaded.rows[0] for c in self.image_columns):
            missing.append(" or ".join(self.image_columns))
        if missing:
            found = ", ".join(sorted(loaded.rows[0])) if loaded.rows else "none"
            raise MergekitVlmError(
                f"{loaded.source}: missing column(s) {', '.join(missing)} for benchmark {self.name} "
                f"(the {self.hub_id or 'custom'} schema); columns found: {found}"
            )

    def _item(self, row: dict, index: int, split: str, loaded: _Rows) -> Item:
        images = self._images(row, loaded, index, split)
        clean = {k: _jsonable(v) for k, v in row.items() if not _holds_images(v)}
        return self.make_item(clean, index, split, images)

    def _images(self, row: dict, loaded: _Rows, index: int, split: str) -> list:
        where = f"{loaded.source} (row {index})"
        for column in self.image_columns:
            value = row.get(column)
            values = value if isinstance(value, list) else [value]
            images = [im for im in (open_image(v, loaded.base, where) for v in values) if im is not None]
            if images:
                return images
        return []

    def make_item(self, row: dict, index: int, split: str, images: list) -> Item:  # pragma: no cover
        raise NotImplementedError


class MathVista(Benchmark):
    """AI4Math/MathVista. Columns: pid, question, image (path string), decoded_image (Image),
    choices (list), unit, precision, answer, question_type (multi_choice | free_form),
    answer_type (integer | float | text | list), metadata {category, context, grade,
    img_height, img_width, language, skills, source, split, task}, query. The prompt is
    ``query``, which already holds the hint and the choices."""

    name = "mathvista"
    hub_id = "AI4Math/MathVista"
    default_split = "testmini"
    splits = ("testmini", "test")
    required_columns = ("pid", "query", "choices", "answer", "question_type", "answer_type", "metadata")
    image_columns = ("decoded_image", "image")

    def subset_keys(self):
        return ("category", "task", "skills")

    def make_item(self, row, index, split, images):
        meta = row.get("metadata") or {}
        answer = _text(row.get("answer"))
        gold = answer
        choices = list(row.get("choices") or [])
        if row.get("question_type") == "multi_choice" and answer in choices:
            gold = _mcq_gold(LETTERS[choices.index(answer)], answer)
        elif row.get("unit"):
            gold = f"{answer} {row['unit']}"
        return Item(
            benchmark=self.name,
            id=_text(row["pid"]),
            row=row,
            images=images,
            prompt=_text(row["query"]),
            gold=gold,
            subsets={
                # general-vqa vs math-targeted-vqa: the paper's General-VQA / Math-VQA split
                "category": _text(meta.get("category")),
                "task": _text(meta.get("task")),
                # Multi-label: the official breakdown counts an item under each of its skills.
                "skills": [str(v) for v in (meta.get("skills") or [])],
            },
        )


class MathVerse(Benchmark):
    """AI4Math/MathVerse. Configs testmini (3940 rows: 788 problems x Text Dominant, Text
    Lite, Vision Intensive, Vision Dominant, Vision Only) and testmini_text_only (788, no
    image). Columns: sample_index, problem_index, problem_version, question, image, answer,
    question_type (multi-choice | free-form), metadata {split, source, subject, subfield},
    query_wo, query_cot, question_for_eval. The prompt is ``query_cot`` (the dataset's own
    reason-then-answer prompt; ``query_wo`` asks for the answer directly)."""

    name = "mathverse"
    hub_id = "AI4Math/MathVerse"
    default_split = "testmini"
    splits = ("testmini", "testmini_text_only")
    prompt_field = "query_cot"
    required_columns = ("sample_index", "problem_version", "answer", "question_type", "query_cot")
    image_columns = ("image",)

    def hub_config(self, split):
        return split  # one config per split on the Hub

    def _images(self, row, loaded, index, split):
        # testmini_text_only's image column is a string, not an image to look for
        return [] if split == "testmini_text_only" else super()._images(row, loaded, index, split)

    def subset_keys(self):
        return ("version", "subject", "subfield")

    def make_item(self, row, index, split, images):
        meta = row.get("metadata") or {}
        return Item(
            benchmark=self.name,
            id=_text(row["sample_index"]),
            row=row,
            images=images,
            prompt=_text(row.get(self.prompt_field) or row.get("query_wo") or row.get("question")),
            gold=_text(row["answer"]),
            subsets={
                "version": _text(row.get("problem_version")),
                "subject": _text(meta.get("subject")),
                "subfield": _text(meta.get("subfield")),
            },
        )


class MathVision(Benchmark):
    """MathLLMs/MathVision (MATH-V). Columns: id, question, options (list; empty for
    free-form), image (path string), decoded_image (Image), answer (a letter A-E when
    options are given), solution, level (1-5), subject."""

    name = "mathvision"
    hub_id = "MathLLMs/MathVision"
    default_split = "testmini"
    splits = ("testmini", "test")
    required_columns = ("id", "question", "options", "answer", "level", "subject")
    image_columns = ("decoded_image", "image")

    def subset_keys(self):
        return ("subject", "level")

    def make_item(self, row, index, split, images):
        options = list(row.get("options") or [])
        answer = _text(row["answer"])
        if options:
            prompt = f"{_text(row['question'])}\n\nChoices:\n{format_choices(options)}\n\n{MCQ_BOXED}"
            idx = LETTERS.find(answer.strip()) if len(answer.strip()) == 1 else -1
            gold = _mcq_gold(answer.strip(), options[idx] if 0 <= idx < len(options) else None)
        else:
            prompt = f"{_text(row['question'])}\n\n{FREE_BOXED}"
            gold = answer
        return Item(
            benchmark=self.name,
            id=_text(row["id"]),
            row=row,
            images=images,
            prompt=prompt,
            gold=gold,
            subsets={"subject": _text(row.get("subject")), "level": _text(row.get("level"))},
        )


class DynaMath(Benchmark):
    """DynaMath/DynaMath_Sample: 501 seed questions x 10 generated variants, one split per
    variant (sample_variant1..10, files data/sample1-* .. data/sample10-*). Columns: id (the
    seed), question (multiple-choice questions list their options inline, "(A) yes (B) no"),
    image (path string), decoded_image (Image), ground_truth, answer_type (multiple choice |
    float | text), subject, knowledge_level."""

    name = "dynamath"
    hub_id = "DynaMath/DynaMath_Sample"
    variants = tuple(f"sample_variant{i}" for i in range(1, 11))
    default_split = "all"
    splits = ("all",) + variants
    required_columns = ("id", "question", "ground_truth", "answer_type", "subject", "knowledge_level")
    image_columns = ("decoded_image", "image")

    def subset_keys(self):
        return ("variant", "subject", "knowledge_level", "answer_type")

    def load(self, data=None, split=None, limit=None):
        split = self._check_split(split)
        if split != "all":
            return super().load(data, split, limit)
        if limit is not None and limit <= 0:
            return []
        per_variant = None if limit is None else -(-limit // len(self.variants))
        first = _load_split(data, self.hub_id, self.variants[0], limit=per_variant)
        if first.split_aware:
            groups = [self._items(first, self.variants[0])]
            groups += [self._items(_load_split(data, self.hub_id, v, limit=per_variant), v) for v in self.variants[1:]]
            items = [item for group in groups for item in group]
        else:
            # One source with every variant: a seed's k-th row is its variant k.
            loaded = first if limit is None else _load_split(data, self.hub_id, self.variants[0], limit=limit)
            self._check_columns(loaded)
            seen: Dict[str, int] = {}
            items = []
            for i, row in enumerate(loaded.rows):
                seed = _text(row.get("id"))
                seen[seed] = seen.get(seed, 0) + 1
                items.append(self._item(row, i, f"sample_variant{seen[seed]}", loaded))
        # Seed-major order, so that a limit keeps whole seeds.
        order = {}
        for item in items:
            order.setdefault(_text(item.row.get("id")), len(order))
        items.sort(key=lambda it: (order[_text(it.row.get("id"))], int(it.subsets["variant"])))
        return items if limit is None else items[:limit]

    def make_item(self, row, index, split, images):
        variant = split.replace("sample_variant", "") if split.startswith("sample_variant") else "1"
        multiple_choice = _text(row.get("answer_type")).strip().lower() == "multiple choice"
        return Item(
            benchmark=self.name,
            id=f"{_text(row['id'])}-v{variant}",
            row=row,
            images=images,
            prompt=f"{_text(row['question'])}\n\n{MCQ_BOXED if multiple_choice else FREE_BOXED}",
            gold=_text(row["ground_truth"]),
            subsets={
                "variant": variant,
                "subject": _text(row.get("subject")),
                "knowledge_level": _text(row.get("knowledge_level")),
                "answer_type": _text(row.get("answer_type")),
            },
        )


class MMStar(Benchmark):
    """Lin-Chen/MMStar (config/split val, file mmstar.parquet). Columns: index, question
    (options inline: "Options: A: ..., B: ..., C: ..., D: ..."), image (Image), answer (a
    letter), category, l2_category, meta_info {source, split, image_path}."""

    name = "mmstar"
    hub_id = "Lin-Chen/MMStar"
    default_split = "val"
    splits = ("val",)
    required_columns = ("index", "question", "answer", "category", "l2_category")
    image_columns = ("image",)

    def subset_keys(self):
        return ("category", "l2_category")

    def make_item(self, row, index, split, images):
        return Item(
            benchmark=self.name,
            id=_text(row["index"]),
            row=row,
            images=images,
            prompt=f"{_text(row['question'])}\n{MCQ_DIRECT}",
            gold=_text(row["answer"]).strip(),
            subsets={"category": _text(row.get("category")), "l2_category": _text(row.get("l2_category"))},
        )


class GSM8K(Benchmark):
    """openai/gsm8k, config main (files main/test-*.parquet). Columns: question, answer
    (worked solution ending in "#### <number>"). Text only: a check that merging kept the
    language model's reasoning. The id is the row's position in the split."""

    name = "gsm8k"
    hub_id = "openai/gsm8k"
    config = "main"
    default_split = "test"
    splits = ("test", "train")
    required_columns = ("question", "answer")

    def make_item(self, row, index, split, images):
        return Item(
            benchmark=self.name,
            id=str(index),
            row=row,
            images=[],
            prompt=f"{_text(row['question'])}\n\n{FREE_BOXED}",
            gold=gsm8k_gold(row["answer"]),
            subsets={},
        )


def gsm8k_gold(answer: Any) -> str:
    """The final number of a GSM8K solution (after "#### "), thousands commas removed."""
    return _text(answer).split("####")[-1].strip().replace(",", "")


class Custom(Benchmark):
    """Your own data in the generic format of the module docstring."""

    name = "custom"
    hub_id = None
    default_split = "test"
    splits = ()
    required_columns = ("question", "answer")
    image_columns = ("images", "image")
    images_required = False  # text-only custom sets are fine

    def subset_keys(self):
        return ("subset",)

    def load(self, data=None, split=None, limit=None):
        if data is None:
            raise MergekitVlmError(
                "custom: give the data with --data custom=PATH (a .jsonl file, or a folder with data.jsonl)"
            )
        path = Path(str(data)).expanduser()
        if path.is_dir() and (path / "data.jsonl").is_file():
            data = str(path / "data.jsonl")
        return super().load(data, split, limit)

    def make_item(self, row, index, split, images):
        choices = list(row.get("choices") or [])
        answer = _text(row["answer"])
        if choices:
            prompt = f"{_text(row['question'])}\n\nChoices:\n{format_choices(choices)}\n\n{MCQ_BOXED}"
            letter = answer.strip() if answer.strip() in LETTERS[: len(choices)] and len(answer.strip()) == 1 else None
            if letter is None and answer in choices:
                letter = LETTERS[choices.index(answer)]
            gold = _mcq_gold(letter, choices[LETTERS.index(letter)] if letter else answer)
        else:
            prompt = f"{_text(row['question'])}\n\n{FREE_BOXED}"
            gold = answer
        item_id = row.get("id")
        return Item(
            benchmark=self.name,
            id=_text(item_id) if item_id not in (None, "") else str(index),
            row=row,
            images=images,
            prompt=prompt,
            gold=gold,
            subsets={"subset": _text(row.get("subset"))} if row.get("subset") not in (None, "") else {},
        )


BENCHMARKS: Dict[str, Benchmark] = {
    b.name: b for b in (MathVista(), MathVerse(), MathVision(), DynaMath(), MMStar(), GSM8K(), Custom())
}


def get_benchmark(name: str) -> Benchmark:
    key = str(name).strip().lower()
    if key not in BENCHMARKS:
        raise MergekitVlmError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]


# ---------------------------------------------------------------------------------------
# DynaMath robustness metrics
# ---------------------------------------------------------------------------------------


def _dynamath_seed(item: Any) -> str:
    row = item.get("row") if isinstance(item, Mapping) else getattr(item, "row", None)
    if isinstance(row, Mapping) and row.get("id") not in (None, ""):
        return _text(row["id"])
    item_id = item.get("id") if isinstance(item, Mapping) else getattr(item, "id", "")
    return _text(item_id).rsplit("-v", 1)[0]


def dynamath_worst_case(results: Iterable[Tuple[Any, bool]]) -> float:
    """Worst-case accuracy: the share of seed questions whose variants are all correct.

    ``results`` are (item, correct) pairs; an item is an :class:`Item` or a prediction record
    (a mapping with ``row``/``id``). A seed counts the variants present (a ``limit`` may
    have cut the last one short)."""
    by_seed: Dict[str, bool] = {}
    for item, correct in results:
        seed = _dynamath_seed(item)
        by_seed[seed] = by_seed.get(seed, True) and bool(correct)
    return sum(by_seed.values()) / len(by_seed) if by_seed else 0.0


def dynamath_average(results: Iterable[Tuple[Any, bool]]) -> float:
    """Average-case accuracy: the share of all (seed, variant) items answered correctly."""
    flags = [bool(correct) for _, correct in results]
    return sum(flags) / len(flags) if flags else 0.0
