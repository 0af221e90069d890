"""Scrapes two exporters of the same corosync in turn and compares wall time and CPU.

Run by benches/exporter/run inside tests/harness/with-corosync (a private network
namespace, so the loopback ports cannot collide with anything). CPU is the exporter's
utime+stime plus that of its reaped children (ha_cluster_exporter runs corosync-cfgtool
and corosync-quorumtool on every scrape), plus corosync's own, from /proc/PID/stat.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime + cutime + cstime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICK


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body = r.read()
    if b"corosync" not in body:
        sys.exit(f"port {port}: no corosync metric in the answer")


def wait_up(port, proc):
    for _ in range(100):
        if proc.poll() is not None:
            sys.exit(f"exporter on port {port} exited with {proc.returncode}")
        try:
            scrape(port)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"exporter on port {port} never answered")


def measure(name, argv, port, scrapes, corosync):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port, proc)
        for _ in range(5):
            scrape(port)
        cpu0, daemon0, t0 = cpu_seconds(proc.pid), cpu_seconds(corosync), time.perf_counter()
        for _ in range(scrapes):
            scrape(port)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        daemon = cpu_seconds(corosync) - daemon0
    finally:
        proc.kill()
        proc.wait()
    per = lambda v: v / scrapes * 1e3
    print(f"{name:22} wall {per(wall):8.3f} ms/scrape   cpu exporter {per(cpu):7.3f} ms"
          f"   corosync {per(daemon):6.3f} ms   total {per(cpu + daemon):7.3f} ms")
    return wall, cpu + daemon


def main():
    ours_bin, scrapes = sys.argv[1], int(sys.argv[2])
    corosync = int(subprocess.check_output(["pidof", "corosync"]).split()[0])
    a, b = free_port(), free_port()
    print(f"{scrapes} sequential scrapes each, one run (CPU resolution {1e3 / TICK:.0f} ms in total)")
    ours = measure("corowire-exporter", [ours_bin, "--listen", f"127.0.0.1:{a}"], a, scrapes, corosync)
    theirs = measure("ha_cluster_exporter", ["ha_cluster_exporter", f"--web.listen-address=127.0.0.1:{b}"],
                     b, scrapes, corosync)
    print(f"ratio corowire/ha_cluster: wall {ours[0] / theirs[0]:.4f}x   "
          f"cpu (exporter + corosync) {ours[1] / theirs[1]:.4f}x   (goal: <= 0.05x)")


main()
