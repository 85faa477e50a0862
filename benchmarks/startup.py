"""What mergekit-vlm's start-up hook (the .pth line) costs a Python process that never uses it.

Runs `python -X importtime -c pass` repeatedly and reports the median interpreter start-up
and the median cumulative import time of ``mergekit_vlm._autoload`` (what the .pth adds),
and checks that torch, transformers and mergekit are not imported.

    python benchmarks/startup.py [--runs 30]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

CHECK = "import sys; print(sorted(m for m in ('torch', 'transformers', 'mergekit') if m in sys.modules))"


def one_run():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True)
    total = time.perf_counter() - start
    hook_us = 0
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2].strip() == "mergekit_vlm._autoload":
            hook_us = int(parts[1])
    return total, hook_us / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    heavy = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True).stdout.strip()
    disabled = os.environ.get("MERGEKIT_VLM_DISABLE")
    runs = [one_run() for _ in range(args.runs)]
    total = statistics.median(r[0] for r in runs)
    hook = statistics.median(r[1] for r in runs)
    print("| measure | median |\n|---|---:|")
    print(f"| interpreter start-up (`python -c pass`) | {total * 1e3:.1f} ms |")
    print(f"| of which the mergekit-vlm hook | {hook * 1e3:.2f} ms ({hook / total:.1%}) |")
    print(f"heavy modules imported at start-up: {heavy}; MERGEKIT_VLM_DISABLE={disabled!r}; {args.runs} runs")


if __name__ == "__main__":
    main()
