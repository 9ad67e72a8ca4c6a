"""One tile's cube built from COGs over HTTP with a round-trip delay, against the same files read locally.

Usage: python benchmarks/sits_http.py [--scenes 36] [--delays 0 20 50] [--read-threads N] [--rounds 1]
                                     [--same-process]

The demo tile of `benchmarks/sits_cube.py` (512 x 512 px, N scenes of 10 bands + SCL as COGs) is
written once; `build_tile_cube` then reads it
  - from the local files (the baseline, timed in the same run), and
  - from a real HTTP/1.1 server on loopback, in its own process, that answers Range requests and
    waits a fixed delay before each answer (a simulated round trip to S3 or Azure; 0 ms is the
    server alone).
Each build runs in a process of its own, as a `cropmap sits` job does: its read threads start cold
(GDAL's per-thread PROJ context is built on a thread's first open, under the interpreter lock), and
only the build is timed, not the imports. `--same-process` builds in this process instead, after one
untimed build, as the benchmark did before (warm threads: it flatters the many read threads of HTTP).
Printed per source: seconds, ratio to local, the requests the server answered and the bytes it sent.
Issue 22's target: the 50 ms build within 1.5x the local one. `--read-threads` overrides
`sits.read_threads` (the reads in flight per tile job, set apart from its CPU threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sits_cube import demo_tile, written_demo_tile  # noqa: E402  (the same tile and scenes as the local benchmark)

from cropmap.acquisition.sits import build_tile_cube  # noqa: E402


def _serve(root: str, delay: mp.Value, requests: mp.Value, sent: mp.Value, ready) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as object stores answer
        # TCP_NODELAY, as web servers and object stores set it: with Nagle's algorithm on, the body of
        # a small answer waits for the client's delayed ACK of its headers (40 ms on Linux)
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.do_GET(body=False)

        def do_GET(self, body=True):
            time.sleep(delay.value)
            with requests.get_lock():
                requests.value += 1
            path = Path(root) / self.path.lstrip("/").split("?")[0]
            if not path.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = path.stat().st_size
            match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            start, end = (int(match[1]), min(int(match[2] or size - 1), size - 1)) if match else (0, size - 1)
            self.send_response(206 if match else 200)
            self.send_header("Accept-Ranges", "bytes")
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                with path.open("rb") as f:
                    f.seek(start)
                    data = f.read(end - start + 1)
                self.wfile.write(data)
                with sent.get_lock():
                    sent.value += len(data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # socketserver's listen backlog is 5: a burst of connections beyond it waits out TCP's SYN
        # retry (1 s and more), which an object store never makes a client do
        request_queue_size = 1024

        def handle_error(self, request, client_address):
            pass  # a client closing a kept-alive connection is not news

    httpd = Server(("127.0.0.1", 0), Handler)
    ready.put(httpd.server_address[1])
    httpd.serve_forever()


class DelayedRangeServer:
    """An HTTP server over `root` in a child process: Range requests, a settable delay, counters."""

    def __init__(self, root: Path) -> None:
        ctx = mp.get_context("spawn")
        self.delay, self.requests, self.sent = ctx.Value("d", 0.0), ctx.Value("q", 0), ctx.Value("q", 0)
        ready = ctx.Queue()
        self.process = ctx.Process(target=_serve, args=(str(root), self.delay, self.requests, self.sent, ready),
                                   daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get(timeout=60)}"

    def reset(self, delay_s: float) -> None:
        self.delay.value, self.requests.value, self.sent.value = delay_s, 0, 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (Linux): it shares this machine's cores with the build."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        self.process.join(10)


def _served(items, root: Path, url: str, run: int):
    """The items with their assets on the server; `run` in the URL, so that no run reads what GDAL
    cached (file sizes, headers) in an earlier one: each is as cold as a new tile job."""
    out = []
    for item in items:
        item = item.clone()
        for asset in item.assets.values():
            asset.href = f"{url}/{Path(asset.get_absolute_href()).relative_to(root)}?run={run}"
        out.append(item)
    return out


def _build_seconds(root: Path, scenes: int, url: str, run: int, read_threads: int | None) -> float:
    """Seconds to build the benchmark tile's cube from local files (`url` "") or from the server."""
    _, items, settings, tile = written_demo_tile(root, scenes)
    if read_threads:
        settings = dataclasses.replace(settings, read_threads=read_threads)
    source = _served(items, root, url, run) if url else items
    import dask  # noqa: F401  (what the build imports on first use: a cost of the process, not of the reads)
    import odc.stac  # noqa: F401
    import shapely.geometry  # noqa: F401

    import cropmap.acquisition.scenes  # noqa: F401
    start = time.perf_counter()
    build_tile_cube(items=source, tile=tile, settings=settings)
    return time.perf_counter() - start


def _child_seconds(root: Path, scenes: int, url: str, run: int, read_threads: int | None) -> float:
    """`_build_seconds` in a new Python process, as a tile job builds its cube."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_build_seconds, (root, scenes, url, run, read_threads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=36)
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 20, 50], help="ms per request")
    parser.add_argument("--read-threads", type=int, help="sits.read_threads (default: the config's)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--same-process", action="store_true",
                        help="build in this process after a warm-up build (warm read threads)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, items, settings, tile = demo_tile(root, args.scenes)
        if args.read_threads:
            settings = dataclasses.replace(settings, read_threads=args.read_threads)
        server = DelayedRangeServer(root)
        try:
            if args.same_process:
                build_tile_cube(items=items, tile=tile, settings=settings)  # imports and GDAL set-up

            def seconds(run: int | None) -> float:
                """One build from the local files (`run` None) or from the server's URLs of `run`."""
                if not args.same_process:
                    return _child_seconds(root, args.scenes, server.url if run is not None else "", run or 0,
                                          args.read_threads)
                source = items if run is None else _served(items, root, server.url, run=run)
                start = time.perf_counter()
                build_tile_cube(items=source, tile=tile, settings=settings)
                return time.perf_counter() - start

            # interleaved rounds, ratios within a round: a shared machine's speed drifts by a third
            rounds = []
            for k in range(args.rounds):
                local = seconds(None)
                measured = []
                for delay in args.delays:
                    server.reset(delay / 1000)
                    cpu = server.cpu_seconds()
                    s = seconds(1000 * k + int(delay))
                    measured.append((s, s / local, server.requests.value, server.sent.value, server.cpu_seconds() - cpu))
                rounds.append((local, measured))
            print(f"\none 512 x 512 px tile, {len(items)} scenes x {len(settings.bands) + 1} assets, "
                  f"sits.read_threads {settings.read_threads}; median of {args.rounds} interleaved round(s), "
                  + ("builds in this process, warm" if args.same_process else "each build in a new process"))
            print(f"  {'local files':<28}: {statistics.median(r[0] for r in rounds):6.1f} s  1.00x")
            for d, delay in enumerate(args.delays):
                s, ratio, requests, sent, server_cpu = (statistics.median(r[1][d][j] for r in rounds) for j in range(5))
                ratios = sorted(r[1][d][1] for r in rounds)
                print(f"  {f'HTTP, {delay:g} ms per request':<28}: {s:6.1f} s  {ratio:4.2f}x  "
                      f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x)  {requests:,.0f} requests, {sent / 1e6:.0f} MB, "
                      f"server CPU {server_cpu:.2f} s")
            print("  (issue 22: the 50 ms build within 1.5x the local one)")
        finally:
            server.close()


if __name__ == "__main__":
    main()
