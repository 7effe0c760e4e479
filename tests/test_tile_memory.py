"""The tile's programmed state (docs/physics.md §2): allocated by program(), freed by unprogram(), and
state dicts / checkpoints that round-trip for programmed and unprogrammed tiles, also the format
that stored every per-device state as an [N, K] buffer. Plus the edge cases of programming:
all-zero weights and inference times too large to store."""

import pytest
import torch

from aimc_lab import inference, presets
from aimc_lab.config import AnalogConfig, DriftCompensationParameters, MappingParameters, NoiseModelParameters
from aimc_lab.convert import analog_tiles, load_checkpoint, save_checkpoint
from aimc_lab.nn import AnalogLinear
from aimc_lab.tile import AnalogTile

N, K = 12, 40
PCM = AnalogConfig(mapping=MappingParameters(max_input_size=16), noise_model=NoiseModelParameters(kind="pcm"),
                   drift_compensation=DriftCompensationParameters("global"))
LEGACY_NAMES = ("g_target_pos", "g_target_neg", "g_prog_pos", "g_prog_neg", "nu_pos", "nu_neg")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def programmed_tile(config=PCM, seed=0, t=3600.0):
    tile = AnalogTile(N, K, config)
    tile.set_weights(torch.randn(N, K, generator=gen(seed)))
    tile.program(gen(seed + 1))
    tile.drift(t, gen(seed + 2))
    return tile


def matrix_elements(tile):
    """Elements held in buffers of N·K elements or more (the weight is a parameter, not counted)."""
    return sum(b.numel() for b in tile.buffers() if b.numel() >= N * K)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def forward(tile, x, seed=7):
    tile.generator = gen(seed)
    with torch.no_grad():
        return tile(x)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_unprogrammed_tile_holds_no_matrix_state(name):
    tile = AnalogTile(N, K, presets.by_name(name))
    assert matrix_elements(tile) == 0
    assert [k for k, v in tile.state_dict().items() if v.numel() >= N * K] == ["weight"]


@pytest.mark.parametrize("config, expected", [(PCM, 6), (AnalogConfig(), 2)])
def test_program_allocates_what_the_noise_model_needs_and_unprogram_frees_it(config, expected):
    """PCM: signed targets, (G⁺, G⁻) programmed and their drift exponents, read weights = 6·N·K;
    no noise model: targets and read weights only."""
    tile = programmed_tile(config)
    assert matrix_elements(tile) == expected * N * K
    tile.unprogram()
    assert matrix_elements(tile) == 0 and not bool(tile.programmed)
    with pytest.raises(RuntimeError, match="program"):
        tile.conductances()


def test_noise_free_conductances_are_the_targets():
    tile = programmed_tile(AnalogConfig())
    c = tile.conductances()
    assert torch.equal(c["prog_pos"], c["target_pos"]) and torch.equal(c["prog_neg"], c["target_neg"])
    torch.testing.assert_close(c["read_diff"], c["target_pos"] - c["target_neg"])
    torch.testing.assert_close(tile.w_read, tile.weight.detach())


@pytest.mark.parametrize("config", [PCM, AnalogConfig()], ids=["pcm", "no-noise-model"])
def test_programmed_state_loads_into_a_fresh_tile_and_drifts_on_identically(config):
    tile = programmed_tile(config)
    fresh = AnalogTile(N, K, config)
    fresh.load_state_dict(tile.state_dict())
    assert same_state(fresh, tile)
    for key, value in tile.conductances().items():
        assert value == fresh.conductances()[key] if key == "t_inference" else torch.equal(
            value, fresh.conductances()[key])
    x = torch.randn(5, K, generator=gen(3))
    assert torch.equal(forward(fresh, x), forward(tile, x))
    for t in (tile, fresh):
        t.drift(86400.0, gen(4))
    assert torch.equal(forward(fresh, x), forward(tile, x))


def test_unprogrammed_state_unprograms_and_frees_a_programmed_tile():
    source = AnalogTile(N, K, PCM)
    source.set_weights(torch.randn(N, K, generator=gen(5)))
    tile = programmed_tile()
    tile.load_state_dict(source.state_dict())
    assert not bool(tile.programmed) and matrix_elements(tile) == 0 and same_state(tile, source)


def legacy(state, prefix=""):
    """The state dict as the code before lazy buffers wrote it: one [N, K] buffer per device state."""
    state = dict(state)
    if prefix + "g_target" not in state:  # unprogrammed: every buffer was there, zero
        shape = state[prefix + "weight"].shape
        return {**state, **{prefix + n: torch.zeros(shape) for n in (*LEGACY_NAMES, "w_read")}}
    target, g_prog, nu = (state.pop(prefix + n) for n in ("g_target", "g_prog", "nu"))
    return {**state, prefix + "g_target_pos": target.clamp(min=0), prefix + "g_target_neg": (-target).clamp(min=0),
            prefix + "g_prog_pos": g_prog[0], prefix + "g_prog_neg": g_prog[1],
            prefix + "nu_pos": nu[0], prefix + "nu_neg": nu[1]}


def test_legacy_state_dicts_load():
    tile = programmed_tile()
    fresh = AnalogTile(N, K, PCM)
    fresh.load_state_dict(legacy(tile.state_dict()))
    assert same_state(fresh, tile)
    for name in LEGACY_NAMES:
        assert torch.equal(getattr(fresh, name), getattr(tile, name))
    source = AnalogTile(N, K, PCM)
    tile.load_state_dict(legacy(source.state_dict()))  # unprogrammed, zeros: loads without allocating
    assert not bool(tile.programmed) and matrix_elements(tile) == 0 and same_state(tile, source)


def test_incomplete_programmed_state_is_refused():
    state = programmed_tile().state_dict()
    del state["w_read"]
    with pytest.raises(RuntimeError, match="w_read"):
        AnalogTile(N, K, PCM).load_state_dict(state)
    state = legacy(programmed_tile().state_dict())
    del state["nu_neg"]
    with pytest.raises(RuntimeError, match="nu"):
        AnalogTile(N, K, PCM).load_state_dict(state)
    state = legacy(programmed_tile().state_dict())
    state["g_prog_pos"] = state["g_prog_pos"][:, :5]
    with pytest.raises(RuntimeError, match="g_prog_pos"):
        AnalogTile(N, K, PCM).load_state_dict(state)


def test_checkpoint_of_programmed_and_unprogrammed_layers(tmp_path):
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(AnalogLinear(K, N, config=PCM), AnalogLinear(N, 3, config=PCM))

    original = model()
    original[0].tile.program(gen(1))
    for path, state in (("new.pt", None), ("legacy.pt", legacy(original.state_dict(), "0.tile."))):
        save_checkpoint(original, tmp_path / path)
        if state is not None:  # the same checkpoint as the code before lazy buffers saved it
            data = torch.load(tmp_path / path, weights_only=True)
            data["state_dict"] = legacy(state, "1.tile.")
            torch.save(data, tmp_path / path)
        loaded = load_checkpoint(tmp_path / path, model)
        assert same_state(loaded, original)
        assert [bool(t.programmed) for t in analog_tiles(loaded)] == [True, False]


def test_all_zero_weights_program_to_about_zero():
    """max|W| = 0 maps as if max|W| = 1 (s = g_max): the devices sit at 0 µS with their usual noise
    (about 1 % of the weight range), instead of 25x that with s = 1 µS per weight unit."""
    layer = AnalogLinear(64, 32, bias=False, config=presets.pcm_inference())
    layer.set_weights(torch.zeros(32, 64))
    inference.program(layer, gen(0))
    inference.drift(layer, 3600.0, gen(1))
    assert torch.equal(layer.tile.map_scale, torch.full((1,), 25.0))
    assert layer.tile.w_read.abs().max() < 0.1
    x = torch.rand(256, 64, generator=gen(2))
    layer.tile.generator = gen(3)
    with torch.no_grad():
        assert layer(x).abs().mean() < 0.3


def test_drift_time_beyond_the_limit_is_refused_early_and_the_limit_works():
    tile = programmed_tile()
    before = tile.w_read.clone()
    with pytest.raises(ValueError, match=r"t_inference = 1e\+300 .*\[0, 1e\+18\] seconds"):
        tile.drift(1e300)
    assert torch.equal(tile.w_read, before) and float(tile.t_inference) == 3600.0
    with pytest.raises(ValueError, match="t_inference"):
        inference.drift(torch.nn.Sequential(tile), 1e300)
    tile.drift(1e18, gen(0))
    assert torch.isfinite(tile.w_read).all() and torch.isfinite(tile.drift_alpha).all()
    assert float(tile.t_inference) == pytest.approx(1e18, rel=1e-6)


def test_compensation_reads_out_each_physical_tile_on_its_own():
    """With an exact MVM the one-hot read-out of slice s is W_s itself: ref_s = mean|W_prog[:, slice s]|,
    and α(t) = ref_s / mean|W(t)[:, slice s]|."""
    config = AnalogConfig(forward=presets.perfect().forward, mapping=PCM.mapping, noise_model=PCM.noise_model,
                          drift_compensation=DriftCompensationParameters("per_column"))
    tile = programmed_tile(config)
    w_prog = tile._weights_from(tile.g_prog[0], tile.g_prog[1])
    ref = torch.stack([w.abs().mean(dim=1) for w in w_prog.split(16, dim=1)])  # [S, N]
    torch.testing.assert_close(tile.drift_ref, ref)
    now = torch.stack([w.abs().mean(dim=1) for w in tile.w_read.split(16, dim=1)])
    torch.testing.assert_close(tile.drift_alpha, ref / now.clamp(min=1e-4))
