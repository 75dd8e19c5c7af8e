#!/usr/bin/env python3
"""Splits a DWARF-call-graph profile of the fcx server into the phases of a warm request.

Each sample goes to the phase of the nearest marked frame on its stack (leaf first): the log
task, the instance-facing HTTP client (hyper's client and fcx-runtime's connection), the
client-facing HTTP server (hyper's server and fcx-gateway's connection), or fcx's own logic
(gateway handlers, control plane, scheduler, runtime, metrics); kernel and user space apart.
Used for docs/benchmarks.md ("Figures at the end of session 25"):

    perf record -e cpu-clock --call-graph dwarf,16384 -o perf.data -p <fcx pid> -- sleep 2
    perf script -i perf.data -F ip,sym,dso > script.txt
    python3 scripts/perf-phases.py script.txt
"""
import collections
import sys

# Checked in this order on every frame: the first phase with a marker in the frame wins.
PHASES = [
    ("log task", ["logs::writer"]),
    ("instance-facing client (hyper + fcx conn)",
     ["fcx_runtime::conn::", "ResponseBody", "role::Client", "dispatch::Client", "hyper::client"]),
    ("client-facing server (hyper + fcx conn)",
     ["UpgradeableConnection", "role::Server", "dispatch::Server", "fcx_gateway::conn::",
      "fcx_gateway::h1::"]),
    ("fcx logic",
     ["fcx_scheduler::", "fcx_control::", "fcx_gateway::", "fcx_runtime::", "fcx_metrics",
      "fcx_protocol"]),
]


def phase_of(frames):
    for frame in frames:
        for phase, markers in PHASES:
            if any(m in frame for m in markers):
                return phase
    return "other"


def leaf_symbol(frame):
    # "<ip> <symbol> (<dso>)"
    parts = frame.split(None, 1)
    sym = parts[1] if len(parts) > 1 else frame
    return sym.rsplit("(", 1)[0].strip()[:90]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    totals = collections.Counter()
    leaves = collections.Counter()
    stack = []

    def take():
        if not stack:
            return
        space = "kernel" if "kernel.kallsyms" in stack[0] else "user"
        phase = phase_of(stack)
        totals[(space, phase)] += 1
        if space == "user":
            leaves[(phase, leaf_symbol(stack[0]))] += 1

    with open(sys.argv[1], errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                stack.append(line)
            else:
                take()
                stack.clear()
    take()
    n = sum(totals.values())
    if n == 0:
        sys.exit("no samples (was the profile recorded with --call-graph dwarf?)")
    print(f"{n} samples")
    for (space, phase), v in totals.most_common():
        print(f"{100 * v / n:6.2f}%  {space:6}  {phase}")
    for phase, _ in PHASES:
        print(f"-- user space, {phase}: top leaves")
        top = sorted((kv for kv in leaves.items() if kv[0][0] == phase), key=lambda kv: -kv[1])
        for (_, sym), v in top[:8]:
            print(f"   {100 * v / n:5.2f}%  {sym}")


if __name__ == "__main__":
    main()
