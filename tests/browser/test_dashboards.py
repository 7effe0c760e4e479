"""Serve each Voila dashboard, render it in headless Chromium with a throttled CPU, move sliders, check
that every plot follows.

The page's CPU is slowed down ``AIMC_LAB_CPU_THROTTLE`` times (default 4; Chromium's DevTools
``Emulation.setCPUThrottlingRate``) from the first request on: a Binder session on shared CPUs, where
plotly's ``FigureWidget`` used to freeze (anywidget's 2 s module timeout). Any JavaScript console
error or uncaught page error fails the test; none is tolerated.

Printed (run with ``-s``): per dashboard, the seconds from navigation to the page's first byte, to the
page loaded (its scripts ran), to the first visible widget and to every plot drawn (the Drift lab also
to its computed curves), each beside issue 11's target (first widget <= 5 s, Drift lab usable, i.e.
curves computed and plotted, <= 10 s); and the Tile lab's slider-to-plot latency with and without
throttling (from the key press to the plot's redraw, as the page's own clock sees it), beside issue
13's target (median <= 100 ms, max <= 250 ms). The first-render targets are asserted (times a margin
for the machine's load, see :func:`_load_margin`) on a page at full CPU speed, where issue 11 measured
its baseline (:func:`test_first_render_at_full_speed`); under 4x throttling, which a 2-core box does not
get through in 5 s, regression guards are asserted instead, as for the latency (its target is not met
yet; the figures printed say by how much). Screenshots go to test-artifacts/.
"""

import os
import statistics

import pytest

from aimc_lab.cli import VOILA_UNUSED_EXTENSIONS

pytestmark = pytest.mark.browser

RENDER_TIMEOUT_MS = 420_000  # a first render took over 240 s at load 10-17 on 2 cores (11-30)
UPDATE_TIMEOUT_MS = 90_000
THROTTLE = float(os.environ.get("AIMC_LAB_CPU_THROTTLE", "4"))
LATENCY_MOVES = 10
LATENCY_TARGET_MS = (100.0, 250.0)  # median, max: issue 13's target, printed beside the measurement
# What the test asserts: a regression guard, not the target (not met yet). This build measured median
# 202 / max 224 ms unthrottled on a quiet 2-core box (11-30); the Tile explorer before its cheaper
# redraws took ~1.1 s at load 12. The guard sits above the first and far below the second.
LATENCY_GUARD_MS = (300.0, 600.0)
# Issue 11's first-render targets (s) hold for a page at full CPU speed, the condition its baseline
# (14-19 s to the Tile lab's first widget, 27-32 s to the Drift lab's) was measured in:
# test_first_render_at_full_speed asserts them times the load margin. Quiet 2-core box (11-30, preheated
# kernel): Tile lab first widget 3.3 s, plots 6.8 s; Drift lab first widget 3.0 s, usable 5.4 s.
# Under 4x throttling they are printed beside the measurement as met or not, and the guards below are
# asserted (times the load margin). Measured with the preheated kernel, 4x throttling,
# 2 cores: the Tile lab's first widget took 12.9-13.7 s on a quiet machine (11-29); in interleaved
# loads (11-30), with every JupyterLab extension vs without the two that aimc_lab.cli.voila_options
# leaves out, medians 18.8 vs 16.1 s at load 2-4 (plots drawn 40.9 vs 36.9 s) and 39 vs 28 s at load
# 7-15. This test at load 6: Tile lab 17.4 s, Drift lab 26.1 s. The guards catch what the dashboards used to do (train
# before rendering: 27-32 s to the Drift lab's first widget on a quiet machine; a second plotly.js).
FIRST_WIDGET_TARGET_S, DRIFT_USABLE_TARGET_S = 5.0, 10.0
FIRST_WIDGET_GUARD_S, PLOTS_DRAWN_GUARD_S = 15.0, 35.0

FIGURES = ".aimc-lab-figure"


def _open(page, url: str, throttle: float = THROTTLE):
    """Watch for errors, throttle the CPU, load ``url``; returns the list that collects errors.

    Requests leaving the machine (Voila's template asks a CDN for Font Awesome icons) are answered with
    an empty body: the dashboards must work offline, and an unreachable CDN is not an error of ours."""
    errors = []
    page.route(lambda url: not url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")),
               lambda route: route.fulfill(status=200, body="", content_type="text/css"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    page.cdp = cdp
    page.load_at_open = os.getloadavg()[0]
    page.goto(url, timeout=RENDER_TIMEOUT_MS, wait_until="commit")
    return errors


def _seconds_since_navigation(page) -> float:
    return page.evaluate("performance.now()") / 1000.0


def _wait_first_render(page, n_figures: int, ready_text: str = "") -> dict:
    """Seconds from navigation to the first byte of the page, the page loaded (its scripts ran), the
    first visible slider, ``ready_text`` on the page (if given: "ready") and ``n_figures`` drawn plots."""
    page.locator(".widget-slider").first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    times = {"first widget": _seconds_since_navigation(page)}
    if ready_text:
        page.get_by_text(ready_text).first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        times["ready"] = _seconds_since_navigation(page)
    nav = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return [n.responseStart, n.loadEventEnd]; })()")
    page.wait_for_function(
        """n => { const f = document.querySelectorAll('%s');
                  return f.length >= n && Array.from(f).every(e => Number(e.dataset.revision) > 0); }""" % FIGURES,
        arg=n_figures, timeout=RENDER_TIMEOUT_MS)
    return {"first byte": nav[0] / 1000, "page loaded": nav[1] / 1000, **times,
            "plots drawn": _seconds_since_navigation(page)}


def _revision(page, figure: int) -> int:
    return page.evaluate("i => Number(document.querySelectorAll('%s')[i].dataset.revision)" % FIGURES, figure)


def _trace_y(page, figure: int, trace: int):
    """The first values of a trace's y (or z) as plotly.js in the page holds them."""
    return page.evaluate(
        """([i, t]) => { const gd = document.querySelectorAll('%s')[i];
                         const tr = gd.data[t]; const v = tr.y !== undefined ? tr.y : tr.z;
                         return JSON.stringify(Array.from(v).slice(0, 40)); }""" % FIGURES, [figure, trace])


def _slider(page, label: str, nth: int = 0):
    return page.locator(".widget-slider", has_text=label).nth(nth).locator(".noUi-handle").first


def _move_and_wait(page, label: str, figure: int, trace: int, nth: int = 0, key: str = "ArrowRight"):
    """Move a slider one step; the figure must redraw with different data."""
    before_rev, before_y = _revision(page, figure), _trace_y(page, figure, trace)
    handle = _slider(page, label, nth)
    handle.focus()
    handle.press(key)
    page.wait_for_function("([i, r]) => Number(document.querySelectorAll('%s')[i].dataset.revision) > r" % FIGURES,
                           arg=[figure, before_rev], timeout=UPDATE_TIMEOUT_MS)
    page.wait_for_function("([i, t, old]) => { const gd = document.querySelectorAll('%s')[i];"
                           " const tr = gd.data[t]; const v = tr.y !== undefined ? tr.y : tr.z;"
                           " return JSON.stringify(Array.from(v).slice(0, 40)) !== old; }" % FIGURES,
                           arg=[figure, trace, before_y], timeout=UPDATE_TIMEOUT_MS)


def _latency_ms(page, label: str, figure: int, moves: int):
    """Slider-to-plot latency: from the key press (the page's keydown event) to the end of the plot's
    redraw (its data-revision changing), for ``moves`` moves alternating right and left; returns the
    latencies and the part of each spent decoding and drawing (the figure's data-draw-ms)."""
    handle = _slider(page, label)
    handle.focus()
    page.evaluate("""i => { const gd = document.querySelectorAll('%s')[i];
        const first = window.__aimcLat === undefined;   // listeners once per page; fresh lists per call
        window.__aimcLat = {down: 0, times: [], draws: []};
        if (!first) return;
        document.addEventListener('keydown', () => { window.__aimcLat.down = performance.now(); }, true);
        new MutationObserver(() => { window.__aimcLat.times.push(performance.now() - window.__aimcLat.down);
                                     window.__aimcLat.draws.push(Number(gd.dataset.drawMs)); })
            .observe(gd, {attributes: true, attributeFilter: ['data-revision']}); }""" % FIGURES, figure)
    for k in range(moves):
        n = page.evaluate("window.__aimcLat.times.length")
        handle.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")
        page.wait_for_function("n => window.__aimcLat.times.length > n", arg=n, timeout=UPDATE_TIMEOUT_MS)
        page.wait_for_timeout(150)  # the kernel settles before the next move (no coalesced redraws)
    return page.evaluate("[window.__aimcLat.times, window.__aimcLat.draws]")


def _load_margin(since_load: float = 0.0) -> float:
    """How much slower than an idle machine the timing bounds may be: 2x (timer and scheduling jitter),
    times the run queue per core when the machine is oversubscribed (a CI box shared by other jobs;
    the 1-minute load average over the CPU count, at least 1). ``since_load``: the load average when
    the measurement began (a first render lasts minutes on a loaded box; the larger of the two counts)."""
    return 2.0 * max(1.0, max(since_load, os.getloadavg()[0]) / (os.cpu_count() or 1))


def _report(name: str, times: dict, load: float, throttle: float = THROTTLE) -> None:
    print(f"\n[{name}] CPU throttled {throttle:g}x, load {load:.1f} on {os.cpu_count()} CPUs at navigation: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


def _check_first_render(page, name: str, times: dict, targets: dict, throttle: float = THROTTLE) -> None:
    """Print issue 11's ``targets`` (seconds per entry of ``times``) as met or not. At full speed
    (``throttle`` 1) assert the targets times the load margin; under the default 4x throttling, the
    guards (first widget, plots drawn) times the load margin."""
    print(f"[{name}] issue 11's targets (CPU throttled {throttle:g}x): " + "; ".join(
        f"{k} <= {v:g} s {'met' if times[k] <= v else 'not met'}" for k, v in targets.items()))
    if throttle == 1:
        bounds = targets
    elif throttle == 4:
        bounds = {"first widget": FIRST_WIDGET_GUARD_S, "plots drawn": PLOTS_DRAWN_GUARD_S}
    else:
        return  # the guards were measured under 4x throttling
    margin = _load_margin(page.load_at_open)
    for key, bound in bounds.items():
        assert times[key] <= bound * margin, (
            f"{name}: {key} after {times[key]:.1f} s (CPU throttled {throttle:g}x); allowed: {bound:g} s times "
            f"the load margin {margin:.1f}")


def _drift_lab_times(page) -> dict:
    """First render of the Drift lab: its first widget, curves computed ("done ·"), the plot drawn, usable."""
    times = _wait_first_render(page, 1, ready_text="done ·")
    times = {("curves computed" if k == "ready" else k): v for k, v in times.items()}
    times["usable"] = max(times["curves computed"], times["plots drawn"])   # curves computed and plotted
    return times


#: dashboard -> (figures drawn at first render, issue 11's targets)
FIRST_RENDER = {"tile_lab.ipynb": (3, {"first widget": FIRST_WIDGET_TARGET_S}),
                "drift_lab.ipynb": (1, {"first widget": FIRST_WIDGET_TARGET_S, "usable": DRIFT_USABLE_TARGET_S}),
                "design_lab.ipynb": (2, {"first widget": FIRST_WIDGET_TARGET_S})}


@pytest.mark.parametrize("name", sorted(FIRST_RENDER))
def test_first_render_at_full_speed(page, voila, name):
    """Issue 11's targets where its baseline was measured: a page at full CPU speed, served as `aimc-lab
    serve` serves it (preheated kernel). Printed, and asserted times the load margin."""
    page.set_viewport_size({"width": 1400, "height": 1900})
    errors = _open(page, voila(name, preheat=True), throttle=1)
    n_figures, targets = FIRST_RENDER[name]
    times = _drift_lab_times(page) if name == "drift_lab.ipynb" else _wait_first_render(page, n_figures)
    label = name.removesuffix(".ipynb").replace("_", " ")
    _report(label, times, page.load_at_open, throttle=1)
    _check_first_render(page, label, times, targets, throttle=1)
    assert not errors, "\n".join(errors)


def test_tile_lab(page, voila, artifacts):
    page.set_viewport_size({"width": 1400, "height": 1900})
    errors = _open(page, voila("tile_lab.ipynb", preheat=True))
    times = _wait_first_render(page, 3)   # tile explorer, conductance curves, conductance heatmaps
    _report("tile lab", times, page.load_at_open)
    _check_first_render(page, "tile lab", times, {"first widget": FIRST_WIDGET_TARGET_S})
    page.screenshot(path=str(artifacts / "tile_lab_before.png"), full_page=True)
    error_label = page.locator("text=relative error").first
    before_text = error_label.inner_text()
    # every figure follows its sliders under throttling (the tile explorer's again in the latency runs)
    _move_and_wait(page, "ADC bits", 0, 0)
    for _ in range(2):
        _move_and_wait(page, "drift exponent", 1, 1)
        _move_and_wait(page, "weight std", 2, 0, nth=1)
    assert error_label.inner_text() != before_text
    page.screenshot(path=str(artifacts / "tile_lab_after.png"), full_page=True)

    measured = {}
    for throttle in (THROTTLE, 1):
        page.cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
        latencies, draws = _latency_ms(page, "ADC bits", 0, LATENCY_MOVES)
        measured[throttle] = latencies
        print(f"[tile lab] slider -> plot latency over {len(latencies)} moves (CPU throttled {throttle:g}x, "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): median {statistics.median(latencies):.0f} "
              f"ms, max {max(latencies):.0f} ms; of which decoding and drawing: median "
              f"{statistics.median(draws):.0f} ms, max {max(draws):.0f} ms")
    assert not errors, "\n".join(errors)
    latencies, margin = measured[1], _load_margin()
    assert len(latencies) >= LATENCY_MOVES
    median, worst = statistics.median(latencies), max(latencies)
    met = median <= LATENCY_TARGET_MS[0] and worst <= LATENCY_TARGET_MS[1]
    print(f"[tile lab] issue 13's target {LATENCY_TARGET_MS[0]:g} / {LATENCY_TARGET_MS[1]:g} ms: "
          f"{'met' if met else 'not met'}")
    median_bound, max_bound = (margin * guard for guard in LATENCY_GUARD_MS)
    assert median <= median_bound and worst <= max_bound, (
        f"slider -> plot latency (no throttling) median {median:.0f} ms, max {worst:.0f} ms; allowed (regression "
        f"guard): {LATENCY_GUARD_MS[0]:g} / {LATENCY_GUARD_MS[1]:g} ms times the load margin {margin:.1f}")


def test_drift_lab(page, voila, artifacts):
    page.set_viewport_size({"width": 1400, "height": 900})
    errors = _open(page, voila("drift_lab.ipynb", preheat=True))
    times = _drift_lab_times(page)
    # served as `aimc-lab serve` serves it: without the JupyterLab extensions the dashboards do not use
    page_extensions = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent)"
                                    ".federated_extensions.map(e => e.name)")
    assert "anywidget" in page_extensions and not set(VOILA_UNUSED_EXTENSIONS) & set(page_extensions)
    _report("drift lab", times, page.load_at_open)
    _check_first_render(page, "drift lab", times, {"first widget": FIRST_WIDGET_TARGET_S, "usable": DRIFT_USABLE_TARGET_S})
    page.screenshot(path=str(artifacts / "drift_lab_before.png"), full_page=True)
    for _ in range(2):
        _move_and_wait(page, "drift exponent", 0, 3)   # faster drift: re-evaluation
        page.wait_for_selector("text=done ·", timeout=UPDATE_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "drift_lab_after.png"), full_page=True)
    assert not errors, "\n".join(errors)


def test_tile_lab_in_jupyterlab(page, jupyterlab, artifacts):
    """The same figures in JupyterLab (throttled too): run all cells, every figure draws and follows."""
    page.set_viewport_size({"width": 1400, "height": 1900})
    errors = _open(page, jupyterlab("tile_lab.ipynb"))
    page.locator(".jp-Notebook").first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function("document.body.innerText.includes('(ipykernel) | Idle')", timeout=RENDER_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    try:
        times = _wait_first_render(page, 3)
    finally:
        page.screenshot(path=str(artifacts / "tile_lab_jupyterlab.png"), full_page=True)
    _report("tile lab in JupyterLab", times, page.load_at_open)
    _move_and_wait(page, "ADC bits", 0, 0)
    _move_and_wait(page, "drift exponent", 1, 1)
    page.screenshot(path=str(artifacts / "tile_lab_jupyterlab.png"), full_page=True)
    assert not errors, "\n".join(errors)


def test_figures_follow_when_anywidget_gives_up(page, voila, artifacts):
    """Force anywidget's 2 s module timeout to fire after 1 ms (what a very slow page meets): anywidget
    rejects every model, as it did plotly's FigureWidget, whose plots then froze. Ours still draw and
    follow every slider, because their state never passes through anywidget."""
    page.add_init_script("""{ const timeout = AbortSignal.timeout.bind(AbortSignal);
                              AbortSignal.timeout = ms => timeout(ms === 2000 ? 1 : ms); }""")
    page.set_viewport_size({"width": 1400, "height": 1900})
    errors = _open(page, voila("tile_lab.ipynb", preheat=True), throttle=1)
    _wait_first_render(page, 3)
    _move_and_wait(page, "ADC bits", 0, 0)
    _move_and_wait(page, "drift exponent", 1, 1)
    _move_and_wait(page, "weight std", 2, 0, nth=1)
    forced = [e for e in errors if "[anywidget] Failed to initialize model." in e]
    assert forced, "the forced timeout did not fire: this test no longer exercises anything"
    assert len(forced) == len(errors), "\n".join(errors)
