"""What the benchmarks share: running commands, the machine's and a process's CPU time, FUSE mounts."""
import os
import subprocess
import sys
import time

GIB_BYTES = 1 << 30


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def busy_seconds():
    """Busy CPU time of the whole machine, all cores (everything but idle and iowait), in seconds."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(args, gib, shell=False):
    """Runs a command that moves `gib` GiB: GiB/s and the machine's busy CPU seconds per GiB."""
    cpu0, t0 = busy_seconds(), time.monotonic()
    subprocess.run(args, check=True, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed, cpu = time.monotonic() - t0, busy_seconds() - cpu0
    return gib / elapsed, cpu / gib


def process_seconds(pid):
    """User + system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_mounted(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"mount at {path} exited early with {proc.returncode}")
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == path for line in f):
                return
        time.sleep(0.02)
    sys.exit(f"{path} did not mount within {timeout} s")


def unmount(path):
    subprocess.run(["fusermount3", "-u", "-z", path], stderr=subprocess.DEVNULL)


def build_passthrough_ll(directory):
    """libfuse's passthrough_ll example, from the source libfuse3-dev ships: the reference FUSE filesystem."""
    example = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
    binary = f"{directory}/passthrough_ll"
    flags = subprocess.run(["pkg-config", "fuse3", "--cflags", "--libs"], check=True, capture_output=True, text=True).stdout.split()
    sh("cc", "-O2", "-Wall", example, "-o", binary, *flags)
    return binary


def release_binaries(root, products=("stagingfs",)):
    """The directory with stagingfs (and importctl): $STAGINGFS_BIN when set, else a release build of `root`."""
    given = os.environ.get("STAGINGFS_BIN")
    if given:
        return given
    print(f"building {', '.join(products)} (release)", flush=True)
    for product in products:
        sh("swift", "build", "-c", "release", "--product", product, cwd=root, stdout=subprocess.DEVNULL)
    return subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()
