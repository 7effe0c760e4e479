"""Headless tests of the figure widget: what reaches the frontend, in which model, in how many messages."""

import gzip

import numpy as np
import plotly.graph_objects as go
import pytest

from aimc_lab.widgets._figure import PLOTLY_JS, Figure, FigureState, PlotlyLibrary, encode


@pytest.fixture
def figure():
    fig = Figure(go.Figure([go.Scatter(x=np.arange(4.0), y=np.zeros(4)), go.Heatmap(z=np.ones((2, 3)))]))
    sent = []
    fig.state._send = lambda msg, buffers=None: sent.append((msg["state"], buffers or []))
    fig.sent = sent
    return fig


def test_state_lives_in_a_plain_widget_model(figure):
    # a @jupyter-widgets/base WidgetModel: no module to load, so no anywidget timeout can drop updates
    assert (figure.state._model_module, figure.state._model_name) == ("@jupyter-widgets/base", "WidgetModel")
    assert (figure.library._model_module, figure.library._model_name) == ("@jupyter-widgets/base", "WidgetModel")
    assert len(figure._esm) < 10_000   # the view's module, ready at once; plotly.js comes separately
    assert isinstance(figure.state, FigureState)


def test_plotly_js_sent_once_per_kernel(figure):
    other = Figure(go.Figure())
    assert other.library is figure.library is PlotlyLibrary.shared()
    assert gzip.decompress(figure.library.source) == PLOTLY_JS.read_bytes()
    figure.library.close()
    assert PlotlyLibrary.shared() is not figure.library   # recreated after close


def test_arrays_travel_as_float32_buffers(figure):
    x = figure.state.data[0]["x"]
    assert x["ndarray"] == "float32" and x["shape"] == [4]
    np.testing.assert_array_equal(np.frombuffer(x["buffer"], np.float32), np.arange(4.0))
    z = figure.state.data[1]["z"]
    assert z["shape"] == [2, 3] and np.frombuffer(z["buffer"], np.float32).tolist() == [1.0] * 6
    # plotly's base64 form and integer arrays
    b64 = go.Figure(go.Bar(y=np.array([1, 2, 3]))).to_plotly_json()["data"][0]["y"]
    assert encode(b64)["ndarray"] == "int32"
    assert encode({"a": [np.float64(1.5), np.array([], dtype=float)]}) == {"a": [1.5, []]}


def test_batch_update_sends_one_message_with_what_changed(figure):
    with figure.batch_update():
        figure.data[0].y = np.ones(4)
        figure.data[1].z = np.zeros((2, 3))
    assert len(figure.sent) == 1
    state, buffers = figure.sent[0]
    assert set(state) == {"data"} and len(buffers) == 3   # the traces (x, y, z as binary), no layout
    figure.layout.title = "t"
    assert len(figure.sent) == 2 and set(figure.sent[1][0]) == {"layout"}
    figure.data[0].y = np.ones(4)   # same values: nothing to send
    assert len(figure.sent) == 2


def test_outside_batch_every_change_is_sent(figure):
    figure.data[0].x = np.arange(4.0) * 2
    assert len(figure.sent) == 1
    np.testing.assert_array_equal(np.frombuffer(figure.state.data[0]["x"]["buffer"], np.float32), [0, 2, 4, 6])
    figure.update_layout(yaxis_range=[0, 1])
    assert figure.state.layout["yaxis"]["range"] == [0, 1]


def test_figure_methods_apply_as_one_batch(figure):
    assert figure.add_scatter(x=[0, 1], y=[1, 0], name="new").update_xaxes(type="log") is figure
    assert len(figure.data) == 3 and figure.layout.xaxis.type == "log"
    assert len(figure.sent) == 2   # one message per call
    assert figure.state.data[2]["name"] == "new" and figure.state.layout["xaxis"]["type"] == "log"
    with pytest.raises(AttributeError):
        figure.no_such_method
    with pytest.raises(AttributeError):
        figure._private


def test_methods_that_read_back_the_layout_work(figure):
    """add_hline/add_vline read the shape they just added; inside plotly's batch mode that read saw
    nothing (tutorial 03 failed with "unsupported operand type(s) for +=: 'NoneType' and 'str'")."""
    figure.add_hline(y=0.5, annotation_text="w*")
    figure.add_vline(x=1.0)
    assert len(figure.sent) == 2   # still one message per call
    shapes = figure.state.layout["shapes"]
    assert [s["type"] for s in shapes] == ["line", "line"]
    assert shapes[0]["y0"] == shapes[0]["y1"] == 0.5 and shapes[1]["x0"] == shapes[1]["x1"] == 1.0
    assert figure.state.layout["annotations"][0]["text"] == "w*"
