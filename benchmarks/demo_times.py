"""How long each demo takes at its default settings: wall-clock and CPU seconds.

    python benchmarks/demo_times.py                       # every demo in demos/, one at a time
    python benchmarks/demo_times.py --only regularity --only mnist
    python benchmarks/demo_times.py --args "--test-split-only"   # extra flags for every demo

Each demo runs as a user runs it (``python demos/NAME.py``, its defaults, offline: MNIST falls
back to the split bundled with npvae) in a fresh temporary folder, so its figures land there and
not in the checkout. It records the wall-clock seconds, the CPU seconds of the process and its
children (user + sys, from ``resource.getrusage``) and the exit code, and prints one table row
per demo as it finishes. The CPU seconds hardly depend on what else the machine runs; with one
BLAS thread (``OPENBLAS_NUM_THREADS=1``) they are close to the wall-clock time on an idle
machine, which is what the demos' "under 3 minutes" promise is about. Also records the machine
(CPU model, cores, load average at the start) at the top.
"""

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ROOT / "demos"


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def children_cpu_seconds():
    """user + sys CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_demo(name, extra, timeout, keep=None):
    """Run demos/NAME.py once in a fresh folder: (wall s, CPU s, exit code, last stderr line).
    With ``keep`` (a folder) it runs in keep/NAME, which keeps its figures and its printed
    output (output.txt); otherwise in a temporary folder, deleted after."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(DEMOS))
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) if keep is None else Path(keep, name)
        cwd.mkdir(parents=True, exist_ok=True)
        cpu_before, start = children_cpu_seconds(), time.perf_counter()
        try:
            done = subprocess.run([sys.executable, str(DEMOS / f"{name}.py"), *extra], cwd=cwd,
                                  env=env, capture_output=True, text=True, timeout=timeout)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as stopped:
            code, out, err = "timeout", stopped.stdout or "", f"stopped after {timeout:.0f} s"
        wall = time.perf_counter() - start
        if keep is not None:
            (cwd / "output.txt").write_text((out if isinstance(out, str) else out.decode())
                                            + (err if isinstance(err, str) else err.decode()))
    lines = (err if isinstance(err, str) else err.decode()).strip().splitlines()
    return wall, children_cpu_seconds() - cpu_before, code, (lines[-1] if lines else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", help="demos whose name contains this (repeatable)")
    p.add_argument("--args", default="", help="extra flags passed to every demo")
    p.add_argument("--keep", help="run each demo in KEEP/NAME and keep its figures and output")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a demo is stopped")
    args = p.parse_args(argv)
    names = sorted(f.stem for f in DEMOS.glob("*.py") if not f.stem.startswith("_"))
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; load average at the start "
          f"{os.getloadavg()[0]:.1f}; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; Python {platform.python_version()}")
    print(f"command: python benchmarks/demo_times.py {shlex.join(argv or sys.argv[1:])}\n")
    print(f"{'demo':24s} {'wall s':>8s} {'CPU s':>8s}  exit")
    over = []
    for name in names:
        wall, cpu, code, last = time_demo(name, shlex.split(args.args), args.timeout, args.keep)
        note = "" if code == 0 else f"   ({last[:100]})"
        print(f"{name:24s} {wall:8.0f} {cpu:8.0f}  {code}{note}", flush=True)
        if cpu > 180:
            over.append(name)
    print(f"\nover 180 CPU seconds: {', '.join(over) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
