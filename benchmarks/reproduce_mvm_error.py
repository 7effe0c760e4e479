"""Reproduce the paper's MVM error of a 512×512 PCM tile (Le Gallo et al. 2023, Fig. 5b).

Protocol (docs/physics.md §1, "Reference numbers"): W ~ N(0, 0.246²) clipped to [−1, 1]; inputs uniform in
[−1, 1] with 50 % set to 0; relative L2 error ‖y − Wx‖₂ / ‖Wx‖₂ over all input vectors, averaged over
several programming instances. Rows: the MVM nonidealities alone (no conductance noise), then the PCM
model (programming + drift + read noise) at t = 1 s, 1 h, 1 day, 1 year, with and without global drift
compensation. Prints a table; ``--csv PATH`` writes it.

    python benchmarks/reproduce_mvm_error.py [--vectors 1000] [--repeats 5] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd
import torch

from aimc_lab import presets
from aimc_lab.config import DriftCompensationParameters, InputRangeParameters, MappingParameters
from aimc_lab.inference import time_label
from aimc_lab.tile import AnalogTile

TIMES = (1.0, 3600.0, 86400.0, 3.1536e7)


def reference_problem(n_vectors: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = (0.246 * torch.randn(512, 512, generator=g)).clamp(-1, 1)
    x = 2 * torch.rand(n_vectors, 512, generator=g) - 1
    x[torch.rand(x.shape, generator=g) < 0.5] = 0.0
    return w, x


def relative_error(y: torch.Tensor, exact: torch.Tensor) -> float:
    return ((y - exact).norm() / exact.norm()).item()


def config_for(base, compensation: str, pcm: bool):
    """The preset's MVM on a tile that takes the weights as they are (max|W| = 1, one scale)."""
    cfg = dataclasses.replace(
        base, input_range=InputRangeParameters(enable=False),
        mapping=MappingParameters(weight_scaling_omega=1.0),
        drift_compensation=DriftCompensationParameters(compensation))
    if not pcm:
        cfg = dataclasses.replace(cfg, noise_model=dataclasses.replace(cfg.noise_model, kind="none"))
    return cfg


def run(n_vectors: int, repeats: int) -> pd.DataFrame:
    w, x = reference_problem(n_vectors)
    exact = x @ w.T
    rows = []
    torch.manual_seed(0)
    for name, base in (("standard preset", presets.standard_hwa()),
                       ("library defaults", dataclasses.replace(presets.library_defaults(),
                                                                noise_model=presets.standard_hwa().noise_model))):
        tile = AnalogTile(512, 512, config_for(base, "none", pcm=False))
        tile.set_weights(w)
        with torch.no_grad():
            errs = [relative_error(tile(x), exact) for _ in range(repeats)]
        rows.append({"settings": name, "case": "MVM nonidealities only", "t": "-",
                     "rel_error_%": 100 * sum(errs) / len(errs)})
        for comp in ("none", "global"):
            tile = AnalogTile(512, 512, config_for(base, comp, pcm=True))
            tile.set_weights(w)
            gen = torch.Generator().manual_seed(1)
            errs = {t: [] for t in TIMES}
            with torch.no_grad():
                for _ in range(repeats):
                    tile.program(gen)
                    for t in TIMES:
                        tile.drift(t, gen)
                        errs[t].append(relative_error(tile(x), exact))
            for t in TIMES:
                rows.append({"settings": name, "case": f"PCM, compensation {comp}", "t": time_label(t),
                             "rel_error_%": 100 * sum(errs[t]) / len(errs[t])})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    table = run(args.vectors, args.repeats)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\n512x512 tile, {args.vectors} input vectors, mean over {args.repeats} programming instances; "
          f"paper (Fig. 5b, PCM at 1 s, standard settings): about 13 %.  [{time.perf_counter() - start:.1f} s]")
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
