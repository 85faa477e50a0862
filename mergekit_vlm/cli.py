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


if __name__ == "__main__":
    main()
