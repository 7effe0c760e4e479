"""Small pieces shared by the widgets: the backend badge, the log-time slider, a re-entrancy flag."""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import ipywidgets as W

from aimc_lab.inference import time_label
from aimc_lab.kernels import backend

TEN_YEARS = 10 * 3.1536e7
SLIDER_STYLE = {"description_width": "150px"}
SLIDER_LAYOUT = W.Layout(width="380px")


def backend_badge() -> W.HTML:
    """A one-line label naming the kernel implementation that runs the computations."""
    return W.HTML(f"<small>backend: <b>{backend.active()}</b></small>")


def time_slider(description: str = "drift time", value: float = 1.0) -> W.FloatLogSlider:
    """Log slider over inference times 1 s ... 10 years; the readout is a unit label ('1 day')."""
    slider = W.FloatLogSlider(value=value, base=10, min=0.0, max=math.log10(TEN_YEARS), step=0.05,
                              description=description, readout=False, continuous_update=False,
                              style=SLIDER_STYLE, layout=SLIDER_LAYOUT)
    return slider


def time_readout(slider: W.FloatLogSlider) -> W.HBox:
    """The slider followed by a label that follows its value as a readable time."""
    label = W.Label(time_label(slider.value))

    def follow(change) -> None:
        label.value = time_label(change["new"])

    slider.observe(follow, names="value")
    return W.HBox([slider, label])


def bits_to_res(bits: int) -> float:
    """Resolution of a signed converter with ``bits`` bits: 1/(2^bits − 2) (7 bits -> 1/126)."""
    return 1.0 / (2 ** bits - 2)


def res_to_bits(res: float) -> int:
    """Inverse of :func:`bits_to_res` (0 for 'no quantization')."""
    if res <= 0:
        return 0
    steps = res if res > 1 else 1.0 / res
    return int(round(math.log2(steps + 2)))


class Quiet:
    """A re-entrancy flag: while ``with quiet:`` runs, observers return early (syncing controls)."""

    def __init__(self) -> None:
        self.on = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.on, previous = True, self.on
        try:
            yield
        finally:
            self.on = previous
