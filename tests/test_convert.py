"""convert_to_analog / convert_to_digital, the registry, analog_summary, and checkpoints."""

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters, MappingParameters, NoiseModelParameters
from aimc_lab.convert import (analog_summary, analog_tiles, convert_to_analog, convert_to_digital,
                              load_checkpoint, register_conversion, save_checkpoint)
from aimc_lab.nn import (AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogGRUCell, AnalogLinear, AnalogLSTM,
                         AnalogLSTMCell, AnalogRNN, AnalogRNNCell, AnalogSequential)
from aimc_lab.tile import AnalogTile

PERFECT = AnalogConfig(forward=IOParameters(is_perfect=True))
PCM = AnalogConfig(noise_model=NoiseModelParameters(kind="pcm"))


class CNNLSTM(nn.Module):
    """conv features -> LSTM over the width -> linear head; 10 x 12 images."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d((5, 1)))
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True)
        self.head = nn.Linear(24, 10)

    def forward(self, x):  # [B, 3, 10, 12]
        f = self.features(x).squeeze(2).transpose(1, 2)  # [B, 6, 16]
        y, _ = self.lstm(f)
        return self.head(y[:, -1])


class Everything(nn.Module):
    """One of every supported layer type (and a Sequential)."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh())
        self.conv2 = nn.Conv2d(1, 2, 2, bias=False)
        self.rnn = nn.RNN(3, 4, nonlinearity="relu")
        self.gru = nn.GRU(3, 4, num_layers=2)
        self.lstm = nn.LSTM(3, 4, bias=False)
        self.cells = nn.ModuleList([nn.RNNCell(3, 4), nn.LSTMCell(3, 4), nn.GRUCell(3, 4)])
        self.linear = nn.Linear(4, 2)
        self.norm = nn.LayerNorm(4)


def _set_generator(model, seed):
    g = torch.Generator().manual_seed(seed)
    for tile in analog_tiles(model):
        tile.generator = g


def test_cnn_lstm_converts_every_layer_and_matches_with_perfect_io():
    torch.manual_seed(0)
    model = CNNLSTM()
    analog = convert_to_analog(model, PERFECT)
    assert isinstance(model.head, nn.Linear)  # copy=True leaves the original alone
    assert isinstance(analog.features, AnalogSequential)
    assert isinstance(analog.features[0], AnalogConv2d) and isinstance(analog.features[3], AnalogConv2d)
    assert isinstance(analog.lstm, AnalogLSTM) and isinstance(analog.head, AnalogLinear)
    assert isinstance(analog.features[2], nn.MaxPool2d)
    x = torch.randn(4, 3, 10, 12)
    torch.testing.assert_close(analog(x), model(x), atol=1e-5, rtol=1e-5)

    summary = analog_summary(analog)
    shapes = [(r.name, r.tile, r.out_features, r.in_features, r.grid) for r in summary.rows]
    assert shapes == [("features.0", "tile", 8, 27, (1, 1)), ("features.3", "tile", 16, 72, (1, 1)),
                      ("lstm.cells.0", "tile_ih", 96, 16, (1, 1)), ("lstm.cells.0", "tile_hh", 96, 24, (1, 1)),
                      ("lstm.cells.1", "tile_ih", 96, 24, (1, 1)), ("lstm.cells.1", "tile_hh", 96, 24, (1, 1)),
                      ("head", "tile", 10, 24, (1, 1))]
    assert summary.n_layers == 5 and summary.n_physical_tiles == 7
    n_weights = 8 * 27 + 16 * 72 + 96 * (16 + 24 + 24 + 24) + 10 * 24
    assert summary.n_weights == n_weights
    assert summary.utilisation == pytest.approx(n_weights / (7 * 512 * 512))
    assert summary.rows[0].physical_shape == (512, 512)
    assert summary.rows[0].utilisation == pytest.approx(8 * 27 / 512 ** 2)
    text = str(summary)
    assert "lstm.cells.0 [tile_ih]" in text and "AnalogConv2d" in text and "5 layers" in text


def test_summary_of_a_layer_on_a_tile_grid():
    config = AnalogConfig(mapping=MappingParameters(max_input_size=512, max_output_size=256))
    summary = analog_summary(convert_to_analog(nn.Linear(700, 1000), config))
    (row,) = summary.rows
    assert row.label == "<model>" and row.grid == (2, 4) and row.physical_shape == (1024, 1024)
    assert row.utilisation == pytest.approx(700_000 / 1024 ** 2)
    assert "66.8 %" in str(summary)


def test_every_supported_type_round_trips():
    torch.manual_seed(1)
    model = Everything()
    analog = convert_to_analog(model, PERFECT)
    expected = {"seq": AnalogSequential, "conv2": AnalogConv2d, "rnn": AnalogRNN, "gru": AnalogGRU,
                "lstm": AnalogLSTM, "linear": AnalogLinear, "norm": nn.LayerNorm}
    for name, cls in expected.items():
        assert type(getattr(analog, name)) is cls
    assert isinstance(analog.seq[0], AnalogConv1d) and analog.rnn.nonlinearity == "relu"
    assert [type(c) for c in analog.cells] == [AnalogRNNCell, AnalogLSTMCell, AnalogGRUCell]
    assert len(list(analog_tiles(analog))) == 1 + 1 + 2 + 4 + 2 + 6 + 1
    digital = convert_to_digital(analog)
    assert type(digital.seq) is nn.Sequential and type(digital.gru) is nn.GRU
    assert digital.rnn.nonlinearity == "relu"
    original, back = model.state_dict(), digital.state_dict()
    assert list(original) == list(back)
    for key in original:
        torch.testing.assert_close(back[key], original[key], atol=1e-7, rtol=1e-6)


def test_convert_in_place_keeps_train_mode_and_dtype():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Linear(4, 2))).double().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, dtype=torch.float64)
    y = model(x)
    out = convert_to_analog(model, PERFECT, copy=False)
    assert type(out) is AnalogSequential and not out.training
    assert isinstance(out[0], AnalogLinear) and isinstance(out[1][0], AnalogLinear)
    assert out[0].tile.weight.dtype == torch.float64
    torch.testing.assert_close(out(x), y, rtol=1e-12, atol=1e-12)
    back = convert_to_digital(out).state_dict()
    for key, value in original.items():
        assert back[key].dtype == torch.float64
        torch.testing.assert_close(back[key], value, rtol=1e-15, atol=1e-15)


def test_use_programmed_gives_the_drifted_weights():
    torch.manual_seed(2)
    model = nn.Linear(20, 6)
    analog = convert_to_analog(model, PCM)
    with pytest.raises(RuntimeError, match="programmed"):
        convert_to_digital(analog, use_programmed=True)
    for tile in analog_tiles(analog):
        tile.program(torch.Generator().manual_seed(0))
        tile.drift(86400.0, torch.Generator().manual_seed(1))
    drifted = convert_to_digital(analog, use_programmed=True)
    trained = convert_to_digital(analog)
    torch.testing.assert_close(trained.weight, model.weight)
    # what the drifted weights are is checked by behaviour in the next test (outputs of the chip)
    assert not torch.allclose(drifted.weight, model.weight, atol=1e-3)
    assert drifted.weight.abs().sum() < model.weight.abs().sum()  # drift shrinks the weights


@pytest.mark.parametrize("compensation", ["none", "global", "per_column"])
def test_use_programmed_digital_model_computes_what_the_perfect_analog_model_computes(compensation):
    """Behaviour, not the formula: with perfect IO the programmed, drifted analog layer computes
    x·W_eff^T + b with W_eff what the chip applies (read weights, drift compensation per input slice,
    column-wise output scales). The digital copy must give the same outputs, and drift compensation
    must matter (outputs differ from the uncompensated copy) when it is on."""
    from aimc_lab.config import DriftCompensationParameters
    torch.manual_seed(3)
    model = nn.Linear(20, 6)
    config = AnalogConfig(forward=IOParameters(is_perfect=True), noise_model=NoiseModelParameters(kind="pcm"),
                          mapping=MappingParameters(max_input_size=8, weight_scaling_columnwise=True),
                          drift_compensation=DriftCompensationParameters(kind=compensation))
    analog = convert_to_analog(model, config)
    assert analog.tile.n_slices == 3  # 20 inputs on tiles of 8: one compensation factor per slice
    analog.tile.program(torch.Generator().manual_seed(0))
    analog.tile.drift(30 * 86400.0, torch.Generator().manual_seed(1))
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(2))
    analog.eval()
    with torch.no_grad():
        expected = analog(x)
        got = convert_to_digital(analog, use_programmed=True)(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    uncompensated = analog.tile.drift_alpha.clone()
    if compensation == "none":
        assert torch.equal(uncompensated, torch.ones_like(uncompensated))
    else:  # a month of PCM drift: compensation scales the outputs back up, by slice
        assert (uncompensated > 1.02).all()
        analog.tile.drift_alpha.fill_(1.0)
        with torch.no_grad():
            assert not torch.allclose(convert_to_digital(analog, use_programmed=True)(x), got, atol=1e-3)


def test_register_conversion_for_a_new_type():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x):
            return 2 * self.linear(x)

    def handler(module, config):
        layer = AnalogLinear(3, 3, config=config)
        layer.set_weights(2 * module.linear.weight.detach(), 2 * module.linear.bias.detach())
        return layer

    register_conversion(Scaled, handler)
    model = nn.Sequential(Scaled(), nn.ReLU())
    analog = convert_to_analog(model, PERFECT)
    assert isinstance(analog[0], AnalogLinear)
    x = torch.randn(4, 3)
    torch.testing.assert_close(analog(x), model(x))
    with pytest.raises(TypeError, match="torch_type"):
        register_conversion("Linear", handler)


def test_subclasses_are_not_converted():
    mha = nn.MultiheadAttention(8, 2)
    analog = convert_to_analog(nn.Sequential(mha), PERFECT)
    assert type(analog[0].out_proj) is type(mha.out_proj)


def test_unsupported_options_and_bad_arguments_raise_clear_errors():
    with pytest.raises(NotImplementedError, match=r"cannot convert 1\.1 \(Conv2d\).*groups = 2"):
        convert_to_analog(nn.Sequential(nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3, groups=2))))
    with pytest.raises(NotImplementedError, match=r"<model> \(LSTM\).*bidirectional"):
        convert_to_analog(nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(NotImplementedError, match="proj_size"):
        convert_to_analog(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="AnalogConfig"):
        convert_to_analog(nn.Linear(2, 2), {"forward": None})
    with pytest.raises(TypeError, match="nn.Module"):
        convert_to_analog("model")
    nan_model = nn.Linear(3, 2)
    with torch.no_grad():
        nan_model.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        convert_to_analog(nan_model)
    layer = convert_to_analog(nn.Linear(3, 2), PERFECT)
    with pytest.raises(ValueError, match="NaN"):
        layer.set_weights(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        layer(torch.randn(4, 2))


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


def _programmed_pcm_model(seed):
    torch.manual_seed(seed)
    model = convert_to_analog(CNNLSTM(), PCM)
    model.features.program(torch.Generator().manual_seed(10))
    for tile in analog_tiles(model):
        if not bool(tile.programmed):
            tile.program(torch.Generator().manual_seed(11))
    for tile in analog_tiles(model):
        tile.drift(3600.0, torch.Generator().manual_seed(12))
    return model


def _outputs(model, x):
    _set_generator(model, 99)
    with torch.no_grad():
        return model(x)


def test_state_dict_round_trip_of_a_programmed_pcm_model(tmp_path):
    model = _programmed_pcm_model(0)
    x = torch.randn(3, 3, 10, 12)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = convert_to_analog(CNNLSTM(), PCM)  # another random init, not programmed
    fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
    assert all(bool(t.programmed) and float(t.t_inference) == 3600.0 for t in analog_tiles(fresh))
    torch.testing.assert_close(_outputs(fresh, x), _outputs(model, x), rtol=0, atol=0)


def test_checkpoint_round_trip_with_configs(tmp_path):
    model = _programmed_pcm_model(1)
    x = torch.randn(2, 3, 10, 12)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path, lambda: convert_to_analog(CNNLSTM(), PCM))
    torch.testing.assert_close(_outputs(loaded, x), _outputs(model, x), rtol=0, atol=0)
    for a, b in zip(analog_tiles(loaded), analog_tiles(model)):
        for name in ("g_prog_pos", "nu_neg", "w_read", "drift_ref", "map_scale"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    # drifting further from the loaded programmed state equals drifting the original
    for m in (loaded, model):
        for tile in analog_tiles(m):
            tile.drift(86400.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(_outputs(loaded, x), _outputs(model, x), rtol=0, atol=0)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, snapshot):
    state = model.state_dict()
    return list(state) == list(snapshot) and all(torch.equal(state[k], snapshot[k]) for k in state)


def test_checkpoint_with_other_configs_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(_programmed_pcm_model(2), path)
    other = convert_to_analog(CNNLSTM(), AnalogConfig())
    before = _snapshot(other)
    with pytest.raises(ValueError, match=r"configs do not match.*noise_model\.kind: checkpoint 'pcm', model 'none'"):
        load_checkpoint(path, other)
    assert _unchanged(other, before)


def test_checkpoint_with_other_shapes_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(convert_to_analog(nn.Sequential(nn.Linear(8, 4)), PCM), path)
    other = convert_to_analog(nn.Sequential(nn.Linear(8, 5)), PCM)
    before = _snapshot(other)
    with pytest.raises(ValueError, match="(?s)does not fit the model.*size mismatch for 0.tile.weight"):
        load_checkpoint(path, other)
    assert _unchanged(other, before)
    missing_layer = convert_to_analog(nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2)), PCM)
    with pytest.raises(ValueError, match="1.tile.*missing in checkpoint"):
        load_checkpoint(path, missing_layer)


def test_corrupted_checkpoints_are_refused(tmp_path):
    model = convert_to_analog(nn.Sequential(nn.Linear(8, 4)), PCM)
    before = _snapshot(model)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, path)
    data = path.read_bytes()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint(truncated, model)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint(garbage, model)

    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    with pytest.raises(ValueError, match="not an aimc_lab checkpoint"):
        load_checkpoint(plain, model)

    payload = torch.load(path)
    payload["state_dict"]["0.tile.weight"][0, 0] = float("nan")
    nan_path = tmp_path / "nan.pt"
    torch.save(payload, nan_path)
    with pytest.raises(ValueError, match=r"'0\.tile\.weight' contains NaN"):
        load_checkpoint(nan_path, model)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", model)
    with pytest.raises(TypeError, match="model_factory_or_model"):
        load_checkpoint(path, 3)
    assert _unchanged(model, before)


def test_in_memory_training_tiles_are_found_summarised_and_checkpointed(tmp_path):
    from aimc_lab.train.inmemory import InMemoryTile, training_config

    config = training_config("sgd")
    torch.manual_seed(3)
    model = convert_to_analog(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), config)
    tiles = list(analog_tiles(model))
    assert len(tiles) == 2 and all(isinstance(t, InMemoryTile) for t in tiles)
    summary = analog_summary(model)
    assert [(r.name, r.out_features, r.in_features, r.grid) for r in summary.rows] == [
        ("0", 5, 6, (1, 1)), ("2", 2, 5, (1, 1))]
    path = tmp_path / "inmemory.pt"
    save_checkpoint(model, path)
    torch.manual_seed(4)
    fresh = convert_to_analog(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), config)
    load_checkpoint(path, fresh)
    for a, b in zip(analog_tiles(fresh), analog_tiles(model)):
        torch.testing.assert_close(a.get_weights(), b.get_weights(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="configs do not match"):
        load_checkpoint(path, convert_to_analog(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), PCM))


@pytest.mark.parametrize("bad", [{}, "", 0, False, [], {"forward": {}}, "standard"])
def test_a_config_that_is_not_an_analog_config_is_refused_even_if_falsy(bad):
    for build in (lambda: convert_to_analog(nn.Linear(4, 3), bad), lambda: AnalogLinear(4, 3, config=bad),
                  lambda: AnalogConv1d(2, 3, 3, config=bad), lambda: AnalogConv2d(2, 3, 3, config=bad),
                  lambda: AnalogTile(3, 4, bad), lambda: AnalogLSTM(4, 3, config=bad),
                  lambda: AnalogGRUCell(4, 3, config=bad)):
        with pytest.raises(TypeError, match=r"config must be an AnalogConfig.*got " + type(bad).__name__):
            build()



def test_load_checkpoint_refuses_a_path_that_is_not_a_path(tmp_path):
    model = nn.Sequential(AnalogLinear(4, 3))
    for bad in (None, 3, ["a.ckpt"]):
        with pytest.raises(TypeError, match=r"load_checkpoint: path must be .*got " + type(bad).__name__):
            load_checkpoint(bad, model)


@pytest.mark.parametrize("container", [nn.Sequential, AnalogSequential])
@pytest.mark.parametrize("layer", [lambda: AnalogLinear(4, 3), lambda: AnalogConv1d(2, 3, 2),
                                   lambda: AnalogConv2d(2, 3, 2)], ids=["linear", "conv1d", "conv2d"])
def test_load_state_dict_refuses_non_finite_state_naming_the_key(container, layer):
    model = container(layer(), nn.ReLU(), layer() if container is AnalogSequential else nn.Identity())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    keys = ["0.tile.weight", "0.tile.out_scale", "0.bias"]
    keys += ["2.tile.weight"] if container is AnalogSequential else []
    for key in keys:
        for value in (float("nan"), float("inf")):
            state = {k: v.clone() for k, v in model.state_dict().items()}
            state[key].view(-1)[0] = value
            state["0.bias"] += 1.0  # loaded before the tile: must not change either
            with pytest.raises(ValueError, match=rf"state_dict entry '{key}'.*NaN or inf"):
                model.load_state_dict(state)
            after = model.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before)
