"""A class at once: N concurrent Voila sessions of the Tile lab on loopback, each moving a slider.

    python benchmarks/class_load_test.py --sessions 8 --moves 10 [--csv out.csv]

Starts one Voila server for notebooks/dashboards/tile_lab.ipynb (one kernel per browser page, one
torch thread per kernel, idle kernels culled after --cull-s seconds), opens N pages in one headless
Chromium (Debian's /usr/bin/chromium), and in every page at once: waits for the first render, then
moves the "ADC bits" slider --moves times, timing each move from the key press to the plot's redraw
(the figure's data-revision). Reports per-session kernel memory (RSS and USS), the latency
distribution over all sessions, render times, errors, and, after the pages close, whether the culled
kernels gave their memory back. Not a test: it prints a table (and CSV); the machine's load is part
of the result (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "dashboards" / "tile_lab.ipynb"
CHROMIUM = "/usr/bin/chromium"
FIGURES = ".aimc-lab-figure"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kernels(server: psutil.Process):
    return [p for p in server.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


def kernel_memory(server: psutil.Process):
    """[(rss MiB, uss MiB)] of every kernel process under the server."""
    out = []
    for proc in kernels(server):
        try:
            info = proc.memory_full_info()
            out.append((info.rss / 2 ** 20, info.uss / 2 ** 20))
        except psutil.Error:
            pass
    return out


async def session(browser, url: str, moves: int, index: int, timeout_ms: int):
    """One student: open the page, wait for the plots, move the slider; returns a dict of figures."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1900})
    page = await context.new_page()
    errors = []
    await page.route(lambda u: not u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")),
                     lambda route: route.fulfill(status=200, body="", content_type="text/css"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    started = time.perf_counter()
    await page.goto(url, timeout=timeout_ms, wait_until="commit")
    await page.wait_for_function(
        "() => { const f = document.querySelectorAll('%s'); return f.length >= 3 &&"
        " Array.from(f).every(e => Number(e.dataset.revision) > 0); }" % FIGURES, timeout=timeout_ms)
    render_s = time.perf_counter() - started
    handle = page.locator(".widget-slider", has_text="ADC bits").first.locator(".noUi-handle").first
    await handle.focus()
    await page.evaluate("""() => { const gd = document.querySelectorAll('%s')[0];
        window.__lat = {down: 0, times: []};
        document.addEventListener('keydown', () => { window.__lat.down = performance.now(); }, true);
        new MutationObserver(() => window.__lat.times.push(performance.now() - window.__lat.down))
            .observe(gd, {attributes: true, attributeFilter: ['data-revision']}); }""" % FIGURES)
    for k in range(moves):
        n = await page.evaluate("window.__lat.times.length")
        await handle.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")
        await page.wait_for_function("n => window.__lat.times.length > n", arg=n, timeout=timeout_ms)
        await page.wait_for_timeout(300)  # a student reads the plot before the next move
    latencies = await page.evaluate("window.__lat.times")
    return {"session": index, "render_s": render_s, "latencies": latencies, "errors": errors,
            "context": context}


async def main_async(args) -> dict:
    from playwright.async_api import async_playwright

    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           f"--MappingKernelManager.cull_idle_timeout={args.cull_s}",
           f"--MappingKernelManager.cull_interval={max(1, args.cull_s // 4)}", str(NOTEBOOK)]
    log = open(args.log, "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    me = psutil.Process(server.pid)
    out = {}
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"Voila did not start; see {args.log}")
                time.sleep(0.3)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
            started = time.perf_counter()
            results = await asyncio.gather(*(session(browser, f"http://127.0.0.1:{port}/", args.moves, i,
                                                     args.timeout_s * 1000) for i in range(args.sessions)),
                                           return_exceptions=True)
            out["wall_s"] = time.perf_counter() - started
            out["load"] = os.getloadavg()[0]
            memory = kernel_memory(me)
            out["kernels_during"] = len(memory)
            out["rss_mib"] = [m[0] for m in memory]
            out["uss_mib"] = [m[1] for m in memory]
            for r in results:
                if isinstance(r, dict):
                    await r.pop("context").close()
            await browser.close()
        out["sessions"] = [r if isinstance(r, dict) else {"failed": repr(r)} for r in results]
        # the pages are closed: idle kernels must be culled and their memory returned
        wait_until = time.time() + args.cull_s * 3 + 30
        while kernels(me) and time.time() < wait_until:
            time.sleep(2)
        out["kernels_after_cull"] = len(kernels(me))
        out["cull_wait_s"] = round(time.time() - (wait_until - args.cull_s * 3 - 30), 1)
        out["rss_mib_after"] = sum(m[0] for m in kernel_memory(me))
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return out


def summarize(out: dict, sessions: int) -> list:
    ok = [s for s in out["sessions"] if "latencies" in s]
    lat = [t for s in ok for t in s["latencies"]]
    errors = [e for s in ok for e in s["errors"]] + [s["failed"] for s in out["sessions"] if "failed" in s]
    rows = [
        ("sessions (pages) / finished", f"{sessions} / {len(ok)}"),
        ("machine", f"{os.cpu_count()} CPUs, load average {out['load']:.1f} at the end"),
        ("first render: median / max", f"{statistics.median([s['render_s'] for s in ok]):.1f} / "
                                       f"{max(s['render_s'] for s in ok):.1f} s" if ok else "-"),
        ("slider -> plot: median / max", f"{statistics.median(lat):.0f} / {max(lat):.0f} ms over {len(lat)} moves"
                                         if lat else "-"),
        ("kernel RSS per session: median / max", f"{statistics.median(out['rss_mib']):.0f} / "
                                                 f"{max(out['rss_mib']):.0f} MiB" if out["rss_mib"] else "-"),
        ("kernel USS per session: median / max", f"{statistics.median(out['uss_mib']):.0f} / "
                                                 f"{max(out['uss_mib']):.0f} MiB" if out["uss_mib"] else "-"),
        ("kernel RSS, all sessions", f"{sum(out['rss_mib']):.0f} MiB in {out['kernels_during']} kernels"),
        ("kernels left after the pages closed", f"{out['kernels_after_cull']} (waited {out['cull_wait_s']} s)"),
        ("kernel RSS after culling", f"{out['rss_mib_after']:.0f} MiB"),
        ("errors", str(len(errors)) + (f": {errors[:3]}" if errors else "")),
    ]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--moves", type=int, default=10)
    p.add_argument("--cull-s", type=int, default=90,
                   help="idle kernels are culled after this many seconds (more than a page needs to connect: "
                   "a kernel with no connection is culled even while its page is still loading)")
    p.add_argument("--timeout-s", type=int, default=300, help="per-page wait for a render or an update")
    p.add_argument("--log", default="/tmp/class_load_test_voila.log")
    p.add_argument("--csv")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    out = asyncio.run(main_async(args))
    rows = summarize(out, args.sessions)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            csv.writer(fh).writerows([("quantity", "value"), *rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
