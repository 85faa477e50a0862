"""``mergekit-vlm``: the verbs mergekit has no command for. Merging itself is ``mergekit-yaml``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from mergekit_vlm import __version__


@click.group()
@click.version_option(__version__, prog_name="mergekit-vlm")
@click.option("-v", "--verbose", is_flag=True, help="Log what mergekit and mergekit-vlm do.")
def main(verbose: bool) -> None:
    """Merge reasoning LLMs into vision-language models with stock mergekit.

    Merge with `mergekit-yaml RECIPE OUT` (mergekit-vlm plugs into it); use these commands to
    try it offline, and to check models before merging.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default="mergekit-vlm-demo")
def demo(out: Path) -> None:
    """Build a tiny VLM + reasoning LLM offline, merge them, and query the result."""
    from mergekit_vlm.demo import run_demo

    run_demo(out, echo=click.echo)


@main.command("inspect")
@click.argument("models", nargs=-1, required=True)
@click.option("--base", help="The shared base LLM: report each text tower's per-layer distance to it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect_command(models, base, as_json: bool) -> None:
    """Preflight report: family, layout, tower location, compatibility, distance to base."""
    from mergekit_vlm.inspect import format_report, inspect_models, report_to_json

    report = inspect_models(list(models), base=base)
    if as_json:
        click.echo(json.dumps(report_to_json(report), indent=2))
    else:
        click.echo(format_report(report))
    sys.exit(0 if report.mergeable else 1)


@main.command("eval")
@click.argument("models", nargs=-1, required=True)
@click.option("--bench", "benches", multiple=True,
              help="Benchmarks, comma-separated or repeated: mathvista, mathverse, mathvision, dynamath, mmstar, "
                   "gsm8k, custom. With --rescore, default: all with saved predictions.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: predictions/<model>/<bench>.jsonl, summary.json, summary.md, deltas.png.")
@click.option("--data", multiple=True, metavar="NAME=PATH",
              help="Local data for a benchmark (Hub snapshot folder, parquet/jsonl, save_to_disk folder, or Hub "
                   "dataset id). Repeatable.")
@click.option("--split", "splits", multiple=True, metavar="NAME=SPLIT",
              help="Split for a benchmark (a bare SPLIT applies to all). Default: each benchmark's own.")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N items of each benchmark.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--rescore", is_flag=True, help="Re-score saved predictions (no model is loaded) and rebuild the summary.")
@click.option("--judge-url", help="OpenAI-compatible API base (e.g. http://localhost:8000/v1) of an LLM that extracts "
                                  "final answers; correctness is still decided by the rule-based scorer.")
@click.option("--judge-model", help="Model name to send to the judge server.")
@click.option("--judge-api-key", envvar="MERGEKIT_VLM_JUDGE_API_KEY",
              help="Bearer token for the judge (or MERGEKIT_VLM_JUDGE_API_KEY).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def eval_command(models, benches, out, data, splits, limit, batch_size, device, max_new_tokens, rescore,
                 judge_url, judge_model, judge_api_key, no_progress) -> None:
    """Evaluate MODEL(s) (folders or Hub ids; the first is the reference for the delta columns)."""
    from mergekit_vlm.errors import MergekitVlmError
    from mergekit_vlm.evaluate.judge import Judge
    from mergekit_vlm.evaluate.runner import parse_assignments, parse_benches, run_eval

    judge = None
    if judge_url or judge_model:
        if not (judge_url and judge_model):
            raise MergekitVlmError("--judge-url and --judge-model go together")
        judge = Judge(judge_url, judge_model, api_key=judge_api_key)
    run_eval(
        list(models), parse_benches(benches), out,
        data=parse_assignments(data, "--data"),
        splits=parse_assignments(splits, "--split", bare_key="*"),
        limit=limit, batch_size=batch_size, device=device, max_new_tokens=max_new_tokens,
        rescore=rescore, judge=judge, progress=not no_progress,
        echo=lambda message: click.echo(message, err=True),
    )
    click.echo(f"see {out / 'summary.md'}")


if __name__ == "__main__":
    main()
