"""Wall time and peak memory of producing a VLM + LLM language-tower merge, three ways.

    python benchmarks/merge_memory.py [--params 1.1e9] [--out benchmarks/results]

One run builds (or reuses, from ``<out>/models/``) a synthetic bf16 LLaVA of about
``--params`` parameters and a text LLM with the same decoder geometry, then produces the
merged model (lambda = 0.9 for the VLM) in separate child processes, one per approach, so
that each child's peak RSS is its own:

* ``copy``: ``shutil.copyfile`` of the VLM's shards and JSON files; the floor.
* ``mergekit-vlm``: the stock ``mergekit.merge.run_merge`` on a ``borrow_language_tower``
  recipe, with ``out_shard_size=500M`` and again with mergekit's default options.
* ``load-whole``: what the paper's official script does: load both models whole with
  transformers, merge the decoder tensors of the state dicts in memory, ``save_pretrained``.

Each child is started by a small launcher process with ``subprocess.Popen`` and reaped with
``os.wait4``, whose rusage is that child's alone (``ru_maxrss``: peak resident set, KiB on
Linux; see ``LAUNCHER`` for why not straight from this process). Wall time is measured around
the whole child (interpreter start and imports included); each child also reports its "work"
time, measured after its imports.

Results: a Markdown table in ``<out>/merge_memory.md``, JSON in ``<out>/merge_memory.json``,
both printed. Merged outputs are checked (one decoder tensor equals 0.9 * vlm + 0.1 * llm
within bf16 rounding; a vision-tower tensor is byte-identical) and then deleted.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

LAMBDA = 0.9  # weight of the VLM's language tower (the paper's choice)

# Text tower geometry (Llama-2 / TinyLlama-like, full multi-head attention).
HIDDEN = 2048
INTERMEDIATE = 5632
HEADS = 16
LLM_VOCAB = 32000
VLM_VOCAB = 32064  # LLaVA-1.5 style: the VLM's embedding is padded past the LLM's vocabulary
# Vision tower: a CLIP ViT-B sized encoder on the factory's 32px / 8px-patch images, so the
# factory's LLaVA processor fits the checkpoint.
VISION_HIDDEN = 768
VISION_INTERMEDIATE = 3072
VISION_LAYERS = 12
VISION_HEADS = 12
IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_TOKEN_ID = 512  # id of <image> in the factory's LLaVA tokenizer (512-token shared vocab)

SHARD_BYTES = 1_000_000_000  # input checkpoints are written in ~1 GB shards
SEED = 1234
BUILD_VERSION = 1  # bump when the synthetic models change, to invalidate the cache

# Tensors used by the correctness check (names as the VLM checkpoint stores them).
CHECK_TOWER = "language_model.model.layers.0.mlp.down_proj.weight"
CHECK_TOWER_LLM = "model.layers.0.mlp.down_proj.weight"
CHECK_VISION = "vision_tower.encoder.layers.0.self_attn.q_proj.weight"

RECIPE = """merge_method: borrow_language_tower
models:
  - model: {vlm}
    parameters: {{weight: {lam}}}
  - model: {llm}
    parameters: {{weight: {rest}}}
dtype: bfloat16
"""

# (row label, approach, extra mergekit options)
RUNS: List[Tuple[str, str, Dict]] = [
    ("copy", "copy", {}),
    # out_shard_size counts parameters (mergekit.common.parse_kmb("500M") == 500_000_000).
    ("mergekit-vlm (out_shard_size=500M)", "mergekit", {"out_shard_size": 500_000_000}),
    ("mergekit-vlm (default options, 5B shards)", "mergekit", {}),
    ("mergekit-vlm (out_shard_size=100M)", "mergekit", {"out_shard_size": 100_000_000}),
    ("load-whole (transformers)", "load-whole", {}),
]


# ------------------------------------------------------------------------------------------
# Synthetic models
# ------------------------------------------------------------------------------------------


def text_params_per_layer() -> int:
    return 4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTERMEDIATE + 2 * HIDDEN


def fixed_vlm_params() -> int:
    """Parameters of the VLM outside its decoder layers."""
    v = VISION_HIDDEN
    vision_layer = 4 * (v * v + v) + 2 * v * VISION_INTERMEDIATE + VISION_INTERMEDIATE + v + 4 * v
    patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    vision = VISION_LAYERS * vision_layer + v + 3 * v * PATCH_SIZE**2 + (patches + 1) * v + 4 * v
    projector = v * HIDDEN + HIDDEN + HIDDEN * HIDDEN + HIDDEN
    return vision + projector + 2 * VLM_VOCAB * HIDDEN + HIDDEN


def layers_for(params: float) -> int:
    return max(1, round((params - fixed_vlm_params()) / text_params_per_layer()))


def configs(num_layers: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    def text(vocab: int) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=HIDDEN,
            intermediate_size=INTERMEDIATE,
            num_hidden_layers=num_layers,
            num_attention_heads=HEADS,
            num_key_value_heads=HEADS,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=3,
        )

    llm = text(LLM_VOCAB)
    llm.architectures = ["LlamaForCausalLM"]
    vision = CLIPVisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=VISION_INTERMEDIATE,
        num_hidden_layers=VISION_LAYERS,
        num_attention_heads=VISION_HEADS,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=VISION_HIDDEN,
    )
    vlm = LlavaConfig(
        text_config=text(VLM_VOCAB).to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=IMAGE_TOKEN_ID,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        tie_word_embeddings=False,
    )
    vlm.architectures = ["LlavaForConditionalGeneration"]
    for cfg in (llm, vlm):
        cfg.dtype = "bfloat16"
    return vlm, llm


# In-memory (transformers 5) name prefix -> what LLaVA's save_pretrained writes; first match wins.
_MEMORY_TO_SAVED = (
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.vision_tower.", "vision_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)


def saved_vlm_name(memory_name: str) -> str:
    for old, new in _MEMORY_TO_SAVED:
        if memory_name.startswith(old):
            return new + memory_name[len(old) :]
    return memory_name


def shapes_of(model_cls, config, rename=lambda n: n) -> Dict[str, Tuple[int, ...]]:
    import torch

    with torch.device("meta"):
        model = model_cls(config)
    return {rename(n): tuple(t.shape) for n, t in model.state_dict().items()}


def random_tensor(name: str, shape: Tuple[int, ...], seed: int, tag: str):
    """Seeded bf16 tensor; filled in row chunks so float32 scratch stays ~64 MB."""
    import torch

    digest = hashlib.sha256(repr((seed, tag, name)).encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    out = torch.empty(shape, dtype=torch.bfloat16)
    module = name.split(".")[-2] if "." in name else ""
    if name.endswith("bias"):
        scale, offset = 0.02, 0.0
    elif ("norm" in module or "layrnorm" in module) and len(shape) == 1:
        scale, offset = 0.05, 1.0
    else:
        fan_in = math.prod(shape[1:]) if len(shape) >= 2 else shape[0]
        scale, offset = 1.0 / math.sqrt(fan_in), 0.0
    flat = out.view(-1)
    chunk = 16 * 1024 * 1024
    for start in range(0, flat.numel(), chunk):
        n = min(chunk, flat.numel() - start)
        noise = torch.randn(n, generator=g, dtype=torch.float32)
        flat[start : start + n] = noise.mul_(scale).add_(offset)
    return out


def write_sharded(folder: Path, shapes: Dict[str, Tuple[int, ...]], seed: int, tag: str) -> int:
    """Write seeded random bf16 tensors as HF-style shards + index; returns total bytes."""
    from safetensors.torch import save_file

    names = list(shapes)
    groups: List[List[str]] = [[]]
    size = 0
    for name in names:
        nbytes = 2 * math.prod(shapes[name])
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        file = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        tensors = {n: random_tensor(n, shapes[n], seed, tag) for n in group}
        total += sum(t.numel() * 2 for t in tensors.values())
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        del tensors
        weight_map.update({n: file for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def build_models(root: Path, params: float) -> Dict:
    """Build (or reuse) ``root/<tag>/{vlm,llm}``; returns a description of them."""
    num_layers = layers_for(params)
    tag = f"llava-h{HIDDEN}-L{num_layers}-v{BUILD_VERSION}"
    base = root / tag
    info_path = base / "info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        print(f"[build] reusing cached models in {base}", flush=True)
        return info

    from transformers import GenerationConfig, LlamaForCausalLM, LlavaForConditionalGeneration

    t0 = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    vlm_dir, llm_dir = base / "vlm", base / "llm"
    vlm_dir.mkdir(parents=True)
    llm_dir.mkdir(parents=True)
    vlm_cfg, llm_cfg = configs(num_layers)

    vlm_shapes = shapes_of(LlavaForConditionalGeneration, vlm_cfg, saved_vlm_name)
    llm_shapes = shapes_of(LlamaForCausalLM, llm_cfg)
    n_vlm = sum(math.prod(s) for s in vlm_shapes.values())
    n_llm = sum(math.prod(s) for s in llm_shapes.values())
    print(f"[build] {num_layers} decoder layers: VLM {n_vlm/1e9:.3f}B params, LLM {n_llm/1e9:.3f}B params",
          flush=True)

    vlm_bytes = write_sharded(vlm_dir, vlm_shapes, SEED, "vlm")
    llm_bytes = write_sharded(llm_dir, llm_shapes, SEED, "llm")
    vlm_cfg.save_pretrained(vlm_dir)
    llm_cfg.save_pretrained(llm_dir)
    gen = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    gen.save_pretrained(vlm_dir)
    gen.save_pretrained(llm_dir)
    support = write_support_files(vlm_dir, llm_dir)

    info = {
        "tag": tag,
        "vlm": str(vlm_dir),
        "llm": str(llm_dir),
        "num_layers": num_layers,
        "vlm_params": n_vlm,
        "llm_params": n_llm,
        "vlm_bytes": vlm_bytes,
        "llm_bytes": llm_bytes,
        "support_files": support,
        "build_s": round(time.perf_counter() - t0, 1),
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")  # written last: marks the cache complete
    print(f"[build] done in {info['build_s']} s", flush=True)
    return info


def write_support_files(vlm_dir: Path, llm_dir: Path) -> bool:
    """The factory's small tokenizer / LLaVA processor, so the VLM folder is loadable whole.

    Not needed by any approach measured (recipes keep the VLM's embeddings), so a failure
    here only prints a warning.
    """
    try:
        from mergekit_vlm import factory

        tokenizer = factory.make_tokenizer(
            factory.vlm_vocab("llava"), extra_special_tokens=factory.FAMILY_IMAGE_TOKENS["llava"]
        )
        assert tokenizer.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_ID
        processor = factory.make_processor("llava", tokenizer)
        processor.save_pretrained(vlm_dir)
        processor.image_processor.save_pretrained(vlm_dir)
        factory.make_tokenizer().save_pretrained(llm_dir)
        return True
    except Exception as exc:  # pragma: no cover - depends on the factory's current API
        print(f"[build] warning: no tokenizer/processor written ({exc!r})", flush=True)
        return False


def warm_page_cache(folders: List[str]) -> None:
    """Read every input file once so that every approach starts from the same (hot) cache."""
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*"))):
            with open(path, "rb") as fp:
                while fp.read(64 << 20):
                    pass


# ------------------------------------------------------------------------------------------
# Children: one approach each
# ------------------------------------------------------------------------------------------


def child_copy(vlm: str, llm: str, out: str, options: Dict) -> None:
    os.makedirs(out)
    for path in sorted(glob.glob(os.path.join(vlm, "*.safetensors")) + glob.glob(os.path.join(vlm, "*.json"))):
        shutil.copyfile(path, os.path.join(out, os.path.basename(path)))


def child_mergekit(vlm: str, llm: str, out: str, options: Dict) -> None:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    recipe = RECIPE.format(vlm=vlm, llm=llm, lam=LAMBDA, rest=round(1 - LAMBDA, 6))
    config = MergeConfiguration.model_validate(yaml.safe_load(recipe))
    run_merge(config, out, MergeOptions(quiet=True, **options))


def child_load_whole(vlm: str, llm: str, out: str, options: Dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    vlm_model = AutoModelForImageTextToText.from_pretrained(vlm, dtype=torch.bfloat16)
    llm_model = AutoModelForCausalLM.from_pretrained(llm, dtype=torch.bfloat16)
    vlm_sd = vlm_model.state_dict()
    llm_sd = llm_model.state_dict()
    merged = 0
    with torch.no_grad():
        for name, tensor in llm_sd.items():
            # Decoder layers and final norm; embeddings / lm_head stay the VLM's.
            if name.startswith("model.layers.") or name == "model.norm.weight":
                target = vlm_sd["model.language_model." + name[len("model.") :]]
                target.copy_(LAMBDA * target + (1 - LAMBDA) * tensor)
                merged += 1
    assert merged > 0, "no decoder tensor merged"
    vlm_model.save_pretrained(out)


CHILDREN = {"copy": child_copy, "mergekit": child_mergekit, "load-whole": child_load_whole}


def child_main(args) -> None:
    t_start = time.perf_counter()
    func = CHILDREN[args.child]
    options = json.loads(args.options)
    if args.child != "copy":  # import the heavy libraries before the work clock starts
        import torch  # noqa: F401
        import transformers  # noqa: F401
        if args.child == "mergekit":
            import mergekit.merge  # noqa: F401
    t_work = time.perf_counter()
    func(args.vlm, args.llm, args.dest, options)
    t_end = time.perf_counter()
    Path(args.report).write_text(
        json.dumps({"import_s": t_work - t_start, "work_s": t_end - t_work}) + "\n"
    )


# Runs one command and writes its wall time and rusage (from os.wait4) as JSON to argv[1].
# Started fresh from the parent, it is small: Linux carries a process's peak RSS across
# fork + exec (the forked copy of the parent's memory counts), so a child forked straight from
# a parent that holds torch, or a freshly built model, would report the parent's size as its
# own peak. Forked from this launcher instead, the measured child starts at ~10 MB.
LAUNCHER = """
import json, os, subprocess, sys, time

def status_kib(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fp:
            for line in fp:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out

t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
peak = {"RssAnon": 0, "RssFile": 0}
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    for key, value in status_kib(proc.pid).items():
        if key in peak:
            peak[key] = max(peak[key], value)
    time.sleep(0.02)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fp:
    json.dump({"wall_s": wall, "exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
               "peak_anon_kib": peak["RssAnon"], "peak_file_kib": peak["RssFile"]}, fp)
"""


def run_child(approach: str, options: Dict, vlm: str, llm: str, dest: str, log_path: Path) -> Dict:
    """Run one approach in its own process; wall time and that process's peak RSS."""
    fd, report = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    fd, usage_path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child", approach,
        "--vlm", vlm, "--llm", llm, "--dest", dest, "--options", json.dumps(options), "--report", report,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with open(log_path, "w") as log:
        subprocess.run([sys.executable, "-c", LAUNCHER, usage_path, *cmd], stdout=log, stderr=subprocess.STDOUT,
                       env=env, check=True)
    usage = json.loads(Path(usage_path).read_text())
    os.remove(usage_path)
    if usage["exit"] != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{approach} {options} failed (exit {usage['exit']}); log {log_path}:\n{tail}")
    inner = json.loads(Path(report).read_text())
    os.remove(report)
    return {
        "wall_s": usage["wall_s"],
        "work_s": inner["work_s"],
        "import_s": inner["import_s"],
        "peak_rss_bytes": usage["maxrss_kib"] * 1024,  # KiB on Linux
        "user_s": usage["user_s"],
        "sys_s": usage["sys_s"],
        # Sampled every ~20 ms from /proc/<pid>/status: anonymous (heap) vs file-backed
        # (mmapped safetensors, reclaimable page cache) resident memory, peaks taken apart.
        "peak_anon_bytes": usage["peak_anon_kib"] * 1024,
        "peak_file_bytes": usage["peak_file_kib"] * 1024,
    }


# ------------------------------------------------------------------------------------------
# Correctness
# ------------------------------------------------------------------------------------------


def read_tensor(folder: str, name: str):
    from safetensors import safe_open

    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        files = [json.loads(Path(index).read_text())["weight_map"][name]]
    else:
        files = [os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.safetensors"))]
    for file in files:
        with safe_open(os.path.join(folder, file), framework="pt") as f:
            if name in f.keys():
                return f.get_tensor(name)
    raise KeyError(f"{name} not in {folder}")


def check_output(out: str, vlm: str, llm: str) -> Dict:
    """Merged tower tensor == 0.9 vlm + 0.1 llm (bf16 rounding); vision tensor byte-identical."""
    import torch

    v, l, o = (read_tensor(p, n) for p, n in ((vlm, CHECK_TOWER), (llm, CHECK_TOWER_LLM), (out, CHECK_TOWER)))
    assert o.dtype == torch.bfloat16 and o.shape == v.shape, (o.dtype, o.shape)
    expected = LAMBDA * v.float() + (1 - LAMBDA) * l.float()
    err = (o.float() - expected).abs()
    # bf16 keeps 8 significant bits and the sum may be computed in bf16 (each product and the
    # sum rounded): allow a few units in the last place of the terms' magnitudes.
    scale = LAMBDA * v.float().abs() + (1 - LAMBDA) * l.float().abs()
    tower_ok = bool((err <= 4 * 2.0**-8 * scale + 1e-6).all())
    # ...and it must really be a merge, not either input copied.
    distinct = not torch.equal(o, v) and not torch.equal(o, l)
    vision_in, vision_out = read_tensor(vlm, CHECK_VISION), read_tensor(out, CHECK_VISION)
    vision_ok = vision_in.dtype == vision_out.dtype and torch.equal(
        vision_in.view(torch.int16), vision_out.view(torch.int16)
    )
    return {
        "tower_tensor": CHECK_TOWER,
        "tower_max_abs_err": float(err.max()),
        "tower_ok": tower_ok and distinct,
        "vision_tensor": CHECK_VISION,
        "vision_byte_identical": bool(vision_ok),
    }


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def gb(n: float) -> float:
    return n / 1e9


def render(result: Dict) -> str:
    m = result["models"]
    rows = result["rows"]
    floor = next(r for r in rows if r["approach"] == "copy")
    lines = [
        f"# Merge memory benchmark",
        "",
        f"Synthetic LLaVA (bf16): {m['vlm_params']/1e9:.3f}B parameters, {gb(m['vlm_bytes']):.2f} GB of "
        f"safetensors ({m['num_layers']} decoder layers, hidden {HIDDEN}); text LLM: "
        f"{m['llm_params']/1e9:.3f}B parameters, {gb(m['llm_bytes']):.2f} GB. "
        f"Recipe: borrow_language_tower, weight {LAMBDA} (VLM) / {round(1-LAMBDA, 6)} (LLM).",
        "",
        "| approach | wall s | peak RSS GB | wall ratio vs copy | RSS ratio vs copy "
        "| peak RSS / VLM size | peak anon GB | peak file-backed GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['wall_s']:.1f} | {gb(r['peak_rss_bytes']):.2f} | "
            f"{r['wall_s']/floor['wall_s']:.1f}x | {r['peak_rss_bytes']/floor['peak_rss_bytes']:.1f}x | "
            f"{r['peak_rss_bytes']/m['vlm_bytes']:.2f}x | "
            f"{gb(r['peak_anon_bytes']):.2f} | {gb(r['peak_file_bytes']):.2f} |"
        )
    lines += [
        "",
        "Wall s: whole child process (interpreter start and imports included). "
        "Work s (after imports): "
        + ", ".join(f"{r['label']} {r['work_s']:.1f}" for r in rows)
        + ".",
        "Peak RSS: `ru_maxrss` of each approach's own child (via `os.wait4`); "
        "inputs were in the page cache before every run. Peak anon / file-backed: separate peaks of "
        "`RssAnon` (heap, the memory a merge really needs) and `RssFile` (mmapped input files, "
        "reclaimable) sampled every ~20 ms from `/proc/<pid>/status`. The copy floor is a bare "
        "Python process (~20 MB), so RSS ratios vs copy are large by construction; peak RSS / VLM "
        "size compares with the checkpoint instead.",
        "",
        "Checks: "
        + "; ".join(
            f"{r['label']}: tower {'OK' if r['check']['tower_ok'] else 'FAIL'} "
            f"(max abs err {r['check']['tower_max_abs_err']:.2e}), vision "
            f"{'byte-identical' if r['check']['vision_byte_identical'] else 'DIFFERENT'}"
            for r in rows
            if r.get("check")
        )
        + ".",
        "",
        f"One run on {result['machine']}; figures are noisy, compare the ratios.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=float, default=1.1e9, help="approximate VLM parameter count")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (models cached in <out>/models)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the merged folders")
    # Internal: run one approach (used by the parent for each measurement).
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    for name in ("vlm", "llm", "dest", "options", "report"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_total = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    info = build_models(out / "models", args.params)
    vlm, llm = info["vlm"], info["llm"]

    runs_dir = out / "merge_memory_runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir()
    rows = []
    for i, (label, approach, options) in enumerate(RUNS):
        dest = str(runs_dir / f"out{i}")
        warm_page_cache([vlm, llm])
        os.sync()  # flush the previous run's writes so they do not land on this one
        print(f"[run] {label} ...", flush=True)
        row = {"label": label, "approach": approach, "options": options}
        row.update(run_child(approach, options, vlm, llm, dest, runs_dir / f"out{i}.log"))
        if approach != "copy":
            row["check"] = check_output(dest, vlm, llm)
        print(
            f"[run] {label}: wall {row['wall_s']:.1f} s (work {row['work_s']:.1f} s), "
            f"peak RSS {gb(row['peak_rss_bytes']):.2f} GB (anon {gb(row['peak_anon_bytes']):.2f}, "
            f"file {gb(row['peak_file_bytes']):.2f})"
            + (f", check {row['check']}" if "check" in row else ""),
            flush=True,
        )
        rows.append(row)
        if not args.keep_outputs:
            shutil.rmtree(dest, ignore_errors=True)

    mk = next(r for r in rows if r["approach"] == "mergekit")["check"]
    assert mk["tower_ok"], f"mergekit-vlm tower tensor is not 0.9*vlm + 0.1*llm: {mk}"
    assert mk["vision_byte_identical"], f"mergekit-vlm changed the vision tower: {mk}"
    print("OK: mergekit-vlm tower tensor = 0.9*vlm + 0.1*llm (bf16), vision tower byte-identical", flush=True)

    result = {
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM",
        "python": platform.python_version(),
        "models": info,
        "lambda": LAMBDA,
        "rows": rows,
        "total_s": round(time.perf_counter() - t_total, 1),
    }
    try:
        import mergekit
        import torch
        import transformers

        result["versions"] = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "mergekit": getattr(mergekit, "__version__", None) or _dist_version("mergekit"),
        }
    except Exception:
        pass
    table = render(result)
    (out / "merge_memory.md").write_text(table)
    (out / "merge_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table)
    print(f"[done] total {result['total_s']} s; wrote {out / 'merge_memory.md'} and {out / 'merge_memory.json'}")


def _dist_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
