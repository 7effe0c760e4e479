"""The Design lab in headless Chromium (CPU throttled, as tests/browser/test_dashboards.py): it renders
both plots, the "ADC energy ×" slider moves every design point, "inspect" redraws the per-layer
breakdown, and the page logs no error. Screenshots go to test-artifacts/."""

import pytest
from test_dashboards import FIGURES, RENDER_TIMEOUT_MS, UPDATE_TIMEOUT_MS, _open, _report, _revision, \
    _seconds_since_navigation, _slider, _wait_first_render

pytestmark = pytest.mark.browser


def _trace_x(page, figure: int, trace: int) -> str:
    return page.evaluate(
        """([i, t]) => JSON.stringify(Array.from(document.querySelectorAll('%s')[i].data[t].x || []))""" % FIGURES,
        [figure, trace])


def _wait_changed(page, figure: int, trace: int, before_rev: int, before_x: str) -> None:
    page.wait_for_function("([i, r]) => Number(document.querySelectorAll('%s')[i].dataset.revision) > r" % FIGURES,
                           arg=[figure, before_rev], timeout=UPDATE_TIMEOUT_MS)
    page.wait_for_function("([i, t, old]) => JSON.stringify(Array.from("
                           "document.querySelectorAll('%s')[i].data[t].x || [])) !== old" % FIGURES,
                           arg=[figure, trace, before_x], timeout=UPDATE_TIMEOUT_MS)


def test_design_lab(page, voila, artifacts):
    page.set_viewport_size({"width": 1300, "height": 850})
    errors = _open(page, voila("design_lab.ipynb", preheat=True))
    times = _wait_first_render(page, 2)
    page.wait_for_selector("text=done ·", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function("i => document.querySelectorAll('%s')[i].data[0].x.length > 0" % FIGURES, arg=0,
                           timeout=UPDATE_TIMEOUT_MS)
    times["sweep shown"] = _seconds_since_navigation(page)
    page.screenshot(path=str(artifacts / "design_lab_before.png"), full_page=True)

    # cheaper ADCs: every point moves left, the scatter redraws with other energies
    before_rev, before_x = _revision(page, 0), _trace_x(page, 0, 0)
    handle = _slider(page, "ADC energy")
    handle.focus()
    handle.press("ArrowLeft")
    start = _seconds_since_navigation(page)
    _wait_changed(page, 0, 0, before_rev, before_x)
    times["ADC slider -> plot"] = _seconds_since_navigation(page) - start
    assert max(map(float, _trace_x(page, 0, 0)[1:-1].split(","))) < max(map(float, before_x[1:-1].split(",")))

    # another design to inspect: the breakdown bars change
    before_rev, before_x = _revision(page, 1), _trace_x(page, 1, 2)
    menu = page.locator(".widget-dropdown select").first
    # ipywidgets writes option labels with non-breaking spaces
    options = [o.replace("\xa0", " ") for o in menu.evaluate("s => Array.from(s.options).map(o => o.text)")]
    current = menu.evaluate("s => s.selectedIndex")
    menu.select_option(index=next(i for i, o in enumerate(options) if i != current and "tile 16" in o))
    start = _seconds_since_navigation(page)
    _wait_changed(page, 1, 2, before_rev, before_x)
    times["inspect -> bars"] = _seconds_since_navigation(page) - start
    _report("design lab", times, page.load_at_open)
    page.screenshot(path=str(artifacts / "design_lab_after.png"), full_page=True)
    assert not errors, "\n".join(errors)
