"""Per-item overhead of ``mergekit-vlm eval``'s runner against bare ``model.generate``.

Same model, same items, same batch size, same greedy settings, one run each:

* **bare generate**: ``model.generate`` on inputs encoded beforehand (pure model time);
* **bare + processor**: chat template, image processing, tokenising and decoding around it,
  what any evaluation loop must do;
* **run_eval**: the runner end to end with the model already loaded: benchmark data
  loading, prompts, generation, scoring, JSON-lines writes (fsync per batch), summary.json,
  summary.md and deltas.png.

The model is a tiny random LLaVA from ``mergekit_vlm.factory`` (~2M parameters), so model
time is tiny and the runner's fixed costs are as visible as they can be; with a real 7B
model the same absolute overhead is a rounding error. Items are the image benchmarks'
test fixtures (``tests/fixtures/benchmarks``), or ``--data NAME=PATH`` ones.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_overhead.py [--batch-size 4] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
IMAGE_BENCHES = ["mathvista", "mathverse", "mathvision", "dynamath", "mmstar"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--bench", default=",".join(IMAGE_BENCHES))
    parser.add_argument("--data", action="append", default=[], help="NAME=PATH (default: the test fixtures)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each is kept")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="eval_overhead_") as tmp:
            return measure(args, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    return measure(args, args.out)


def measure(args, work: Path) -> None:
    import torch

    torch.manual_seed(0)
    from mergekit_vlm import factory
    from mergekit_vlm.evaluate import report, runner
    from mergekit_vlm.evaluate.runner import LoadedModel, _batches, inspect_model, parse_assignments, parse_benches

    vlm = work / "vlm"
    if not (vlm / "config.json").exists():
        factory.build_vlm(vlm, "llava", seed=0)
    benches = parse_benches([args.bench])
    data = {b: str(FIXTURES / b) for b in benches if (FIXTURES / b).exists()}
    data.update(parse_assignments(args.data, "--data"))

    # The items, once (the runner loads them again itself, inside its timing).
    items = [(b, it) for b in benches for it in runner._load_benchmarks([b], data, {}, None)[b].items]
    n = len(items)
    spec = inspect_model(str(vlm))
    t = time.perf_counter()
    model = LoadedModel(spec, "cpu", args.max_new_tokens)
    load_s = time.perf_counter() - t
    hf_generate = model.model.generate
    gen_kwargs = dict(max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
    batches = list(_batches([it for _, it in items], args.batch_size))

    # Warm-up: one batch through everything, so no path pays first-call costs.
    with torch.inference_mode():
        hf_generate(**model.encode(batches[0]), **gen_kwargs)

    encoded = [model.encode(batch) for batch in batches]

    def decode(inputs, out):
        new = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in model.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def bare():  # 1. model.generate on inputs encoded beforehand
        outs = []
        t = time.perf_counter()
        with torch.inference_mode():
            for inputs in encoded:
                outs.append(hf_generate(**inputs, **gen_kwargs))
        seconds = time.perf_counter() - t
        return seconds, [text for inputs, out in zip(encoded, outs) for text in decode(inputs, out)], {}

    def loop():  # 2. template + processor + generate + decode
        texts = []
        t = time.perf_counter()
        for batch in batches:
            inputs = model.encode(batch)
            with torch.inference_mode():
                texts += decode(inputs, hf_generate(**inputs, **gen_kwargs))
        return time.perf_counter() - t, texts, {}

    # 3. run_eval with the model already loaded; its parts timed through wrappers.
    timers = {"generate": 0.0, "data": 0.0, "report": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] += time.perf_counter() - start
        return wrapper

    model.model.generate = timed("generate", hf_generate)
    model.close = lambda: None
    runner.load_model = lambda *a, **k: model
    runner._load_benchmarks = timed("data", runner._load_benchmarks)
    write_report = report.write_report
    report.write_report = timed("report", write_report)

    def run(attempt=[0]):
        import shutil

        attempt[0] += 1
        out_dir = work / f"eval{attempt[0]}"
        shutil.rmtree(out_dir, ignore_errors=True)
        for key in timers:
            timers[key] = 0.0
        t = time.perf_counter()
        summary = runner.run_eval([str(vlm)], benches, out_dir, data=data, batch_size=args.batch_size, device="cpu",
                                  max_new_tokens=args.max_new_tokens, progress=False, echo=lambda m: None)
        seconds = time.perf_counter() - t
        got = {(b, r["id"]): r["response"] for b in benches
               for r in runner.read_predictions(out_dir / "predictions" / "vlm" / f"{b}.jsonl")}
        run.summary, run.out_dir = summary, out_dir
        return seconds, [got.get((b, str(it.id))) for b, it in items], dict(timers)

    # Interleaved repeats, best of each: the machine may be shared, noise only adds time.
    best = {}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("loop", loop), ("run", run)):
            result = fn()
            if name not in best or result[0] < best[name][0]:
                best[name] = result
    (bare_s, bare_texts, _), (loop_s, loop_texts, _), (run_s, run_texts, run_timers) = (
        best["bare"], best["loop"], best["run"])
    same = bare_texts == loop_texts == run_texts

    # The report of a two-model comparison (table + chart), which one model does not draw.
    two = {"meta": {**run.summary["meta"], "models": run.summary["meta"]["models"] * 2},
           "results": {**run.summary["results"], "copy": next(iter(run.summary["results"].values()))}}
    two["meta"]["models"] = [two["meta"]["models"][0], {**two["meta"]["models"][0], "name": "copy", "slug": "copy"}]
    t = time.perf_counter()
    write_report(run.out_dir / "two_models", two)
    report2_s = time.perf_counter() - t

    def row(name, seconds, note=""):
        return f"| {name} | {seconds:.3f} | {1000 * seconds / n:.2f} | {seconds / bare_s:.2f} | {note} |"

    other = run_s - run_timers["generate"] - run_timers["data"] - run_timers["report"]
    print(f"\n{n} items ({', '.join(benches)}), batch size {args.batch_size}, max_new_tokens "
          f"{args.max_new_tokens}, tiny LLaVA on CPU ({torch.get_num_threads()} threads), best of "
          f"{args.repeats} interleaved runs; model load {load_s:.2f} s (not counted); identical responses "
          f"on all paths: {same}\n")
    print("| path | total s | ms / item | × bare generate | note |")
    print("|---|---:|---:|---:|---|")
    print(row("bare `model.generate`", bare_s, "inputs encoded beforehand"))
    print(row("bare loop: template + processor + generate + decode", loop_s))
    print(row("`run_eval` end to end", run_s, "model preloaded, one model"))
    print(row("↳ `model.generate` inside run_eval", run_timers["generate"]))
    print(row("↳ benchmark data loading", run_timers["data"], "parquet/jsonl + images, once per run"))
    print(row("↳ summary.json + summary.md", run_timers["report"], "once per run"))
    print(row("↳ the rest: prompts, encode, decode, score, jsonl + fsync", other, "per batch"))
    print(row("report for two models (adds deltas.png)", report2_s, "once per run, measured apart"))
    per_item = 1000 * (run_s - run_timers["generate"] - run_timers["data"] - run_timers["report"]) / n
    print(f"\nper-item runner overhead (run_eval minus its generate, data loading and report): {per_item:.2f} ms")
    if not same:
        sys.exit("responses differ between the paths")


if __name__ == "__main__":
    main()
