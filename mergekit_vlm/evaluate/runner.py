"""``mergekit-vlm eval``: greedy generation on math/vision benchmarks, resumable, scored.

For every MODEL x benchmark the runner prompts the model through its own processor and
chat template (images first, then the benchmark's prompt), decodes greedily in left-padded
batches, scores each response with ``mergekit_vlm.evaluate.scoring.score`` and appends one
JSON line per item to ``OUT/predictions/<model-slug>/<bench>.jsonl`` after every batch. A
rerun skips the ids already there, so an interrupted run resumes where it stopped.
``OUT/summary.json`` (written atomically, only at the very end), ``OUT/summary.md`` and
``OUT/deltas.png`` come from ``mergekit_vlm.evaluate.report``.

Everything that can be checked is checked before the first token is generated: benchmark
names, ``--data``/``--split`` keys, the data itself (columns), every model's config (a text
LLM is only accepted when all benchmarks are text-only), the device and the judge.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.evaluate.judge import Judge
from mergekit_vlm.evaluate.report import write_atomic

logger = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
MODEL_INFO = "model.json"  # in each predictions/<slug>/: which model the slug stands for
DEVICES = ("auto", "cuda", "mps", "cpu")


# ---------------------------------------------------------------------------------------
# Command-line helpers
# ---------------------------------------------------------------------------------------


def parse_benches(values: Iterable[str]) -> List[str]:
    """``--bench a,b --bench c`` -> ["a", "b", "c"] (order kept, duplicates dropped)."""
    out: List[str] = []
    for value in values:
        for name in str(value).split(","):
            name = name.strip().lower()
            if name and name not in out:
                out.append(name)
    return out


def parse_assignments(values: Iterable[str], option: str, *, bare_key: Optional[str] = None) -> Dict[str, str]:
    """``NAME=VALUE`` options -> {name: value}. With ``bare_key``, a plain ``VALUE`` is
    stored under that key (``--split test`` applies to every benchmark)."""
    out: Dict[str, str] = {}
    for value in values:
        if "=" in value:
            name, _, setting = value.partition("=")
            name, setting = name.strip().lower(), setting.strip()
            if not name or not setting:
                raise MergekitVlmError(f"{option} {value!r}: expected NAME=VALUE, e.g. {option} mathvista=PATH")
        elif bare_key is not None and value.strip():
            name, setting = bare_key, value.strip()
        else:
            raise MergekitVlmError(f"{option} {value!r}: expected NAME=VALUE, e.g. {option} mathvista=PATH")
        out[name] = setting
    return out


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str  # as the user wrote it
    source: str  # absolute folder path, or the Hub id
    local: bool
    kind: str = "vlm"  # "vlm" (AutoModelForImageTextToText) or "llm" (AutoModelForCausalLM)
    architecture: str = ""
    slug: str = ""

    def info(self) -> dict:
        return {"model": self.name, "source": self.source, "kind": self.kind, "architecture": self.architecture}


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return name[:80] or "model"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def assign_slugs(specs: Sequence[ModelSpec], predictions_root: Path) -> None:
    """Give every model a filesystem-safe directory name under ``predictions/``, unique in
    this run and stable across runs (so resuming finds its files).

    The slug is the folder's name (Hub ids: ``owner__name``). When that is already used in
    ``predictions_root`` by a *different* model, or by another model of this run, it is
    ``parent-name``, then ``name-<hash of the source>``; a model seen before (recorded in
    ``predictions/<slug>/model.json``) keeps the slug it had.
    """
    existing: Dict[str, str] = {}  # slug -> source, from earlier runs
    if predictions_root.is_dir():
        for info_file in predictions_root.glob(f"*/{MODEL_INFO}"):
            try:
                existing[info_file.parent.name] = json.loads(info_file.read_text())["source"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
    by_source = {source: slug for slug, source in existing.items()}
    taken = set(existing) | {p.name for p in predictions_root.iterdir()} if predictions_root.is_dir() else set()
    used: Dict[str, str] = {}
    for spec in specs:
        if spec.source in by_source:
            spec.slug = by_source[spec.source]
        else:
            if spec.local:
                path = Path(spec.source)
                candidates = [_safe_name(path.name), _safe_name(f"{path.parent.name}-{path.name}")]
            else:
                candidates = [_safe_name(spec.source.replace("/", "__"))]
            candidates.append(f"{candidates[0]}-{_short_hash(spec.source)}")
            spec.slug = next((c for c in candidates if c not in taken and c not in used), candidates[-1])
        if spec.slug in used and used[spec.slug] != spec.source:  # pragma: no cover - hash collision
            raise MergekitVlmError(f"models {used[spec.slug]} and {spec.source} map to the same folder {spec.slug}")
        used[spec.slug] = spec.source


def inspect_model(name: str) -> ModelSpec:
    """Resolve MODEL (local folder or Hub id) and read its config, without loading weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    path = Path(name).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise MergekitVlmError(f"model {name} is a file; give the model's folder (with config.json) or a Hub id")
        if not (path / "config.json").is_file():
            raise MergekitVlmError(f"model folder {name} has no config.json; is it a model folder?")
        source = str(path.resolve())
    elif name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name:
        raise MergekitVlmError(f"model folder {name} does not exist")
    else:
        source = name
    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as e:  # OSError offline / unknown repo, ValueError unknown model_type
        where = "folder" if local else "Hub id (not a local folder either)"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MergekitVlmError(f"cannot read the config of model {where} {name}: {reason}") from None
    model_type = getattr(config, "model_type", "")
    architecture = ",".join(getattr(config, "architectures", None) or []) or type(config).__name__
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        kind = "vlm"
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        kind = "llm"
    else:
        raise MergekitVlmError(
            f"model {name} ({architecture}, model_type {model_type!r}) is neither an image-text-to-text "
            "model nor a causal language model transformers can load"
        )
    return ModelSpec(name=name, source=source, local=local, kind=kind, architecture=architecture)


def resolve_device(device: str) -> str:
    import torch

    device = (device or "auto").lower()
    if device not in DEVICES:
        raise MergekitVlmError(f"--device {device}: expected one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MergekitVlmError("--device cuda: no CUDA GPU is available to torch here; use --device auto or cpu")
    if device == "mps" and not mps_ok:
        raise MergekitVlmError("--device mps: Apple MPS is not available to torch here; use --device auto or cpu")
    return device


def device_dtype(device: str):
    import torch

    return torch.float32 if device == "cpu" else torch.bfloat16


class LoadedModel:
    """A model + processor (or tokenizer) on a device, answering batches of items greedily."""

    def __init__(self, spec: ModelSpec, device: str, max_new_tokens: int):
        import torch

        self.spec, self.device, self.max_new_tokens = spec, device, max_new_tokens
        self.dtype = device_dtype(device)
        kwargs = {"dtype": self.dtype}
        if device == "cuda":
            kwargs["device_map"] = "cuda"  # load straight onto the GPU
        try:
            if spec.kind == "vlm":
                from transformers import AutoModelForImageTextToText, AutoProcessor

                self.processor = AutoProcessor.from_pretrained(spec.source)
                self.tokenizer = getattr(self.processor, "tokenizer", None)
                if self.tokenizer is None:
                    raise MergekitVlmError(f"model {spec.name}: its processor has no tokenizer")
                self.model = AutoModelForImageTextToText.from_pretrained(spec.source, **kwargs)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                self.processor = None
                self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
                self.model = AutoModelForCausalLM.from_pretrained(spec.source, **kwargs)
        except MergekitVlmError:
            raise
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MergekitVlmError(f"cannot load model {spec.name}: {reason}") from None
        if device != "cuda":
            self.model.to(device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template = (
            getattr(self.processor, "chat_template", None) if self.processor is not None else None
        ) or getattr(self.tokenizer, "chat_template", None)
        if spec.kind == "vlm" and not self.chat_template:
            raise MergekitVlmError(
                f"model {spec.name} has no chat template (chat_template.jinja or in processor/tokenizer "
                "config); the runner prompts VLMs through it"
            )
        self._torch = torch

    # -- prompts ------------------------------------------------------------------------

    def render(self, item) -> str:
        """The prompt text of ``item`` after the chat template (generation prompt added)."""
        if self.spec.kind == "vlm":
            content = [{"type": "image"} for _ in item.images] + [{"type": "text", "text": item.prompt}]
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(
                messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
            )
        if self.chat_template:
            messages = [{"role": "user", "content": item.prompt}]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return item.prompt

    def encode(self, items: Sequence) -> "object":
        texts = [self.render(item) for item in items]
        # Chat templates write BOS themselves (transformers' own apply_chat_template(tokenize=True)
        # does the same); a bare prompt without a template gets the tokenizer's specials.
        special = not self.chat_template
        if self.spec.kind == "vlm":
            images = [[_rgb(image) for image in item.images] for item in items]
            if any(images):
                inputs = self.processor(
                    text=texts, images=images, padding=True, return_tensors="pt", add_special_tokens=special
                )
            else:
                inputs = self.processor(text=texts, padding=True, return_tensors="pt", add_special_tokens=special)
            from transformers.feature_extraction_utils import BatchFeature

            if isinstance(inputs, BatchFeature):  # casts only floating tensors (pixel values)
                return inputs.to(self.device, dtype=self.dtype)
            return inputs.to(self.device)
        return self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=special).to(self.device)

    def generate(self, items: Sequence) -> List[str]:
        inputs = self.encode(items)
        with self._torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


def _rgb(image):
    return image if getattr(image, "mode", "RGB") == "RGB" else image.convert("RGB")


# Tests and benchmarks replace this to count or reuse loads.
def load_model(spec: ModelSpec, device: str, max_new_tokens: int) -> LoadedModel:
    return LoadedModel(spec, device, max_new_tokens)


# ---------------------------------------------------------------------------------------
# Predictions files
# ---------------------------------------------------------------------------------------


def read_predictions(path: Path, *, repair: bool = False) -> List[dict]:
    """The JSON lines of ``path`` (none if it is missing). A last line cut short by an
    interrupted write is dropped (and, with ``repair``, removed from the file so appends
    start on a fresh line); a damaged line elsewhere is an error."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: List[dict] = []
    good_bytes = 0
    for index, line in enumerate(lines):
        if not line.strip():
            good_bytes += len(line) + 1
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError("not a prediction")
        except ValueError:
            is_last = all(not rest.strip() for rest in lines[index + 1:])
            if not is_last:
                raise MergekitVlmError(
                    f"{path} line {index + 1} is not a prediction record; fix or delete the file"
                ) from None
            if repair:
                logger.warning("%s: dropping an incomplete last line left by an interrupted run", path)
                with open(path, "r+b") as f:
                    f.truncate(good_bytes)
            break
        records.append(record)
        good_bytes += len(line) + 1
    if repair and raw and not raw.endswith(b"\n") and records and good_bytes > len(raw):
        with open(path, "ab") as f:  # complete last record without its newline
            f.write(b"\n")
    return records


def append_predictions(path: Path, records: Sequence[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


def score_response(bench: str, row: Mapping, prompt: str, response: str, judge: Optional[Judge]) -> dict:
    """extracted / correct / method (+ judge fields) for one response."""
    from mergekit_vlm.evaluate.scoring import score

    fields: dict = {}
    if judge is not None:
        answer = judge.extract(prompt, response)
        fields["judge"] = judge.describe()
        fields["judge_extracted"] = answer
        if answer is None:
            fields.update(extracted=None, correct=False, method="judge:no-answer")
            return fields
        result = score(bench, row, answer)
        fields.update(extracted=result.extracted, correct=bool(result.correct), method=f"judge+{result.method}")
        return fields
    result = score(bench, row, response)
    fields.update(extracted=result.extracted, correct=bool(result.correct), method=result.method)
    return fields


def make_record(bench: str, item, response: str, judge: Optional[Judge], split: Optional[str] = None) -> dict:
    record = {
        "id": str(item.id),
        "benchmark": bench,
        "split": split,
        "prompt": item.prompt,
        "response": response,
        "gold": item.gold,
        "subsets": dict(item.subsets or {}),
        "n_images": len(item.images),
    }
    record.update(score_response(bench, item.row, item.prompt, response, judge))
    record["row"] = item.row
    return record


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


@dataclass
class _BenchData:
    name: str
    benchmark: object
    items: list
    split: str
    data: Optional[str]
    needs_images: bool = field(default=False)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _load_benchmarks(benches: Sequence[str], data: Mapping[str, str], splits: Mapping[str, str],
                     limit: Optional[int]) -> Dict[str, _BenchData]:
    from mergekit_vlm.evaluate.benchmarks import get_benchmark

    loaded: Dict[str, _BenchData] = {}
    for name in benches:
        bench = get_benchmark(name)
        split = splits.get(name) or splits.get("*") or bench.default_split
        source = data.get(name)
        try:
            items = bench.load(data=source, split=split, limit=limit)
        except MergekitVlmError:
            raise
        except Exception as e:
            where = source or getattr(bench, "hub_id", name)
            raise MergekitVlmError(
                f"cannot load benchmark {name} (split {split}) from {where}: {_one_line(e)}"
            ) from None
        if not items:
            raise MergekitVlmError(f"benchmark {name} (split {split}) from {source or bench.hub_id} has no items")
        seen = set()
        for item in items:
            key = str(item.id)
            if key in seen:
                raise MergekitVlmError(f"benchmark {name}: item id {key!r} appears twice; ids must be unique")
            seen.add(key)
        loaded[name] = _BenchData(
            name=name, benchmark=bench, items=list(items), split=split, data=source,
            needs_images=any(item.images for item in items),
        )
    return loaded


def _check_benchmark_names(benches: Sequence[str], data: Mapping[str, str], splits: Mapping[str, str]) -> None:
    from mergekit_vlm.evaluate.benchmarks import get_benchmark

    if not benches:
        raise MergekitVlmError("no benchmark given; use --bench, e.g. --bench mathvista,mathverse")
    for name in benches:
        get_benchmark(name)  # unknown -> MergekitVlmError listing the known ones
    for option, mapping in (("--data", data), ("--split", splits)):
        for key in mapping:  # a typo must not silently send a benchmark to the Hub
            if key != "*" and key not in benches:
                try:
                    get_benchmark(key)
                except MergekitVlmError:
                    raise MergekitVlmError(f"{option} {key}=...: {key} is not a benchmark; use one of "
                                           f"{', '.join(benches)}") from None


def _batches(items: Sequence, size: int) -> Iterable[list]:
    """Consecutive batches of at most ``size``; items with and without images never share one."""
    batch: list = []
    for item in items:
        if batch and (len(batch) >= size or bool(batch[0].images) != bool(item.images)):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _versions() -> dict:
    import platform

    from mergekit_vlm import __version__

    out = {"mergekit_vlm": __version__, "python": platform.python_version()}
    for module in ("torch", "transformers", "mergekit", "datasets"):
        try:
            from importlib.metadata import version

            out[module] = version(module)
        except Exception:
            continue
    return out


def _clear_summary(out: Path) -> None:
    from mergekit_vlm.evaluate.report import OUTPUT_FILES

    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


def run_eval(
    models: List[str],
    benches: List[str],
    out: Path,
    *,
    data: Optional[Dict[str, str]] = None,
    splits: Optional[Dict[str, str]] = None,
    limit: Optional[int] = None,
    batch_size: int = 4,
    device: str = "auto",
    max_new_tokens: int = 512,
    rescore: bool = False,
    judge: Optional[Judge] = None,
    progress: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict:
    """Evaluate ``models`` on ``benches``; write predictions, summary.json/.md, deltas.png
    under ``out`` and return the summary. See the module docstring."""
    started = time.time()
    out = Path(out)
    data = {k.lower(): str(v) for k, v in (data or {}).items()}
    splits = {k.lower(): str(v) for k, v in (splits or {}).items()}
    benches = parse_benches(benches or [])
    if not models:
        raise MergekitVlmError("no model given")
    if len(set(models)) != len(models):
        raise MergekitVlmError("a model is given twice")
    if limit is not None and limit < 1:
        raise MergekitVlmError(f"--limit {limit}: must be at least 1")
    if batch_size < 1:
        raise MergekitVlmError(f"--batch-size {batch_size}: must be at least 1")
    if max_new_tokens < 1:
        raise MergekitVlmError(f"--max-new-tokens {max_new_tokens}: must be at least 1")
    if rescore:
        return _rescore(models, benches, out, data=data, splits=splits, limit=limit, judge=judge,
                        started=started, echo=echo)

    # 1. Cheap checks: names, options, device, model configs.
    _check_benchmark_names(benches, data, splits)
    device = resolve_device(device)
    specs = [inspect_model(name) for name in models]
    # 2. The data (columns checked by each Benchmark.load).
    loaded = _load_benchmarks(benches, data, splits, limit)
    for spec in specs:
        if spec.kind == "llm":
            visual = [b.name for b in loaded.values() if b.needs_images]
            if visual:
                raise MergekitVlmError(
                    f"model {spec.name} is not a vision-language model ({spec.architecture}: its config has "
                    f"no vision part) but {', '.join(visual)} has images; evaluate text LLMs on text-only "
                    "benchmarks (gsm8k) only"
                )
    if judge is not None:
        judge.check()

    # 3. Generate what is missing.
    predictions_root = out / PREDICTIONS_DIR
    assign_slugs(specs, predictions_root)
    out.mkdir(parents=True, exist_ok=True)
    _clear_summary(out)  # a summary of an earlier run must not pass for this one's
    results: Dict[str, Dict[str, List[dict]]] = {}
    for spec in specs:
        folder = predictions_root / spec.slug
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / MODEL_INFO, json.dumps(spec.info(), indent=2) + "\n")
        pending: Dict[str, Tuple[list, int]] = {}
        for bench in loaded.values():
            done = {str(r["id"]) for r in read_predictions(folder / f"{bench.name}.jsonl", repair=True)}
            todo = [item for item in bench.items if str(item.id) not in done]
            pending[bench.name] = (todo, len(bench.items) - len(todo))
        if any(todo for todo, _ in pending.values()):
            n_todo = sum(len(todo) for todo, _ in pending.values())
            echo(f"loading {spec.name} ({spec.kind}, {spec.architecture}) on {device} for {n_todo} items")
            model = load_model(spec, device, max_new_tokens)
            try:
                for bench in loaded.values():
                    todo, n_done = pending[bench.name]
                    if todo:
                        _generate(model, bench, todo, n_done, folder / f"{bench.name}.jsonl",
                                  batch_size=batch_size, judge=judge, progress=progress, desc=spec.slug)
            finally:
                model.close()
        else:
            echo(f"{spec.name}: all predictions already in {folder}, nothing to generate")
        results[spec.name] = {}
        for bench in loaded.values():
            by_id = {str(r["id"]): r for r in read_predictions(folder / f"{bench.name}.jsonl")}
            results[spec.name][bench.name] = [by_id[str(item.id)] for item in bench.items if str(item.id) in by_id]

    meta = _meta(specs, benches, started, device=device, limit=limit, batch_size=batch_size,
                 max_new_tokens=max_new_tokens, judge=judge, rescored=False,
                 split={b.name: b.split for b in loaded.values()},
                 data={b.name: b.data or getattr(b.benchmark, "hub_id", None) for b in loaded.values()},
                 dtype=str(device_dtype(device)).replace("torch.", ""))
    return _finish(out, specs, benches, results, meta, echo)


def _generate(model: LoadedModel, bench: _BenchData, todo: list, n_done: int, path: Path, *,
              batch_size: int, judge: Optional[Judge], progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    total = n_done + len(todo)
    with tqdm(total=total, initial=n_done, desc=f"{desc} · {bench.name}", unit="item",
              disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
        for batch in _batches(todo, batch_size):
            responses = model.generate(batch)
            records = [make_record(bench.name, item, response, judge, bench.split)
                       for item, response in zip(batch, responses)]
            append_predictions(path, records)
            bar.update(len(batch))


def _meta(specs, benches, started, **extra) -> dict:
    judge = extra.pop("judge", None)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "models": [{"name": s.name, "slug": s.slug, "source": s.source, "kind": s.kind,
                    "architecture": s.architecture} for s in specs],
        "benchmarks": list(benches),
        **extra,
        "judge": judge.describe() if judge is not None else None,
        "accuracy": "fraction of items scored correct (0-1)",
        "duration_s": round(time.time() - started, 2),
        "versions": _versions(),
    }


def _finish(out: Path, specs, benches, results, meta, echo) -> dict:
    from mergekit_vlm.evaluate import report

    summary = report.build_summary(results, meta)
    report.write_report(out, summary)
    echo(f"wrote {out / 'summary.json'}, {out / 'summary.md'}" + (
        f", {out / 'deltas.png'}" if (out / "deltas.png").exists() else ""))
    return summary


# ---------------------------------------------------------------------------------------
# --rescore
# ---------------------------------------------------------------------------------------


def _find_slug(name: str, predictions_root: Path) -> Tuple[str, dict]:
    """The predictions folder of MODEL, from the model.json files (no model is loaded)."""
    path = Path(name).expanduser()
    source = str(path.resolve()) if path.exists() else name
    candidates = []
    if predictions_root.is_dir():
        for info_file in sorted(predictions_root.glob(f"*/{MODEL_INFO}")):
            try:
                info = json.loads(info_file.read_text())
            except (OSError, ValueError):
                continue
            candidates.append((info_file.parent.name, info))
    for slug, info in candidates:
        if info.get("source") == source:
            return slug, info
    for slug, info in candidates:  # a moved folder, or the slug itself
        if slug == name or info.get("model") == name:
            return slug, info
    raise MergekitVlmError(
        f"no saved predictions for model {name} in {predictions_root}; run without --rescore first"
    )


def _rescore(models, benches, out: Path, *, data, splits, limit, judge, started, echo) -> dict:
    from mergekit_vlm.evaluate.benchmarks import get_benchmark

    predictions_root = out / PREDICTIONS_DIR
    found = [_find_slug(name, predictions_root) for name in models]
    if not benches:  # every benchmark the first model has predictions for
        from mergekit_vlm.evaluate.benchmarks import BENCHMARKS

        known = list(BENCHMARKS)
        benches = sorted((p.stem for p in (predictions_root / found[0][0]).glob("*.jsonl")),
                         key=lambda b: (known.index(b) if b in known else len(known), b))
        if not benches:
            raise MergekitVlmError(f"no predictions in {predictions_root / found[0][0]}")
    _check_benchmark_names(benches, data, splits)
    specs: List[ModelSpec] = []
    records: Dict[str, Dict[str, List[dict]]] = {}
    for name, (slug, info) in zip(models, found):
        spec = ModelSpec(name=name, source=info.get("source", name), local=Path(info.get("source", "")).exists(),
                         kind=info.get("kind", "vlm"), architecture=info.get("architecture", ""), slug=slug)
        specs.append(spec)
        records[name] = {}
        for bench in benches:
            path = predictions_root / slug / f"{bench}.jsonl"
            got = read_predictions(path)
            if not got:
                raise MergekitVlmError(f"no predictions for {name} on {bench} ({path}); run without --rescore first")
            records[name][bench] = got[:limit] if limit else got
    # Rows: from the predictions; from the data only for records written without them.
    rows_needed = [b for b in benches if any("row" not in r for name in models for r in records[name][b])]
    if rows_needed:
        loaded = _load_benchmarks(rows_needed, data, splits, None)
        for bench in rows_needed:
            rows = {str(item.id): item.row for item in loaded[bench].items}
            for name in models:
                for record in records[name][bench]:
                    if "row" not in record:
                        if str(record["id"]) not in rows:
                            raise MergekitVlmError(
                                f"prediction {record['id']} of {name} on {bench} has no row and the data has no such id"
                            )
                        record["row"] = rows[str(record["id"])]
    if judge is not None:
        judge.check()

    _clear_summary(out)
    for spec in specs:
        for bench in benches:
            rescored = []
            for record in records[spec.name][bench]:
                record = {k: v for k, v in record.items() if k not in ("judge", "judge_extracted")}
                row = record["row"]
                record.update(score_response(bench, row, record.get("prompt", ""), record.get("response", ""), judge))
                record["row"] = row  # keep it last
                rescored.append(record)
            records[spec.name][bench] = rescored
            # Rewrite the whole file (records past --limit included) atomically.
            path = predictions_root / spec.slug / f"{bench}.jsonl"
            by_id = {str(r["id"]): r for r in rescored}
            merged = [by_id.get(str(r["id"]), r) for r in read_predictions(path)]
            write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged))

    split = {}
    for bench in benches:
        saved = {r.get("split") for name in models for r in records[name][bench]} - {None}
        split[bench] = (",".join(sorted(saved)) or splits.get(bench) or splits.get("*")
                        or get_benchmark(bench).default_split)
    meta = _meta(specs, benches, started, rescored=True, limit=limit, split=split, judge=judge)
    return _finish(out, specs, benches, records, meta, echo)
