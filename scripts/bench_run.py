"""What the benchmark drivers share (scripts/bench_train.sh, scripts/bench_lora.sh)."""
import subprocess
import sys


def run(command):
    """Runs a command in a child and returns its stdout and its peak resident memory in bytes."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr[-3000:] if r.returncode else ''); print(r.stdout); "
               "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", wrapper] + command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr}")
    lines = result.stdout.strip().split("\n")
    return "\n".join(lines[:-1]), int(lines[-1].split()[1]) * 1024
