"""Hardware-aware training of a converted CNN under DistributedDataParallel, and a distributed drift
evaluation: the runnable example of aimc_lab.distributed.

    python benchmarks/ddp_hwa.py                                    # one process
    torchrun --standalone --nproc_per_node=2 benchmarks/ddp_hwa.py  # two processes (gloo on CPU)

Every run sees the same global batches (a seeded permutation per epoch, split evenly over the
ranks), so one process and N processes train on the same data with the same averaged gradients; only
the noise streams differ (each rank has its own, aimc_lab.distributed.rank_seed). Prints per-epoch
loss and test accuracy, checks that the learned input ranges and output scales are identical on all
ranks, and that evaluate_over_time(distributed=True) equals the single-process table. --json writes
the figures (rank 0). Threads: one torch thread per process (--threads).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from torch import nn

import aimc_lab as al
from aimc_lab import _dist
from aimc_lab import distributed as adist


CONFIGS = {
    # the paper's hardware-aware preset with weight-noise injection: noise differs between ranks
    "standard_hwa": lambda: al.presets.standard_hwa(modifier_std=0.03),
    # no noise, no learned ranges: N processes must compute exactly what one process computes
    "perfect": lambda: al.AnalogConfig(forward=al.IOParameters(is_perfect=True)),
}


def build_model(config: str) -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
    return al.convert_to_analog(cnn, CONFIGS[config]())


def shards(n: int, global_batch: int, epoch: int, rank: int, world: int):
    """This rank's part of each global batch of a seeded epoch permutation (drops the ragged tail)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1000 + epoch))
    for start in range(0, n - global_batch + 1, global_batch):
        yield perm[start:start + global_batch][rank::world]


def ranks_agree(tensor: torch.Tensor) -> float:
    """max |this rank's tensor - rank 0's| over all ranks (0.0 in one process)."""
    if not _dist.active():
        return 0.0
    ref = tensor.detach().clone()
    _dist.broadcast_(ref, 0)
    diff = torch.tensor([float((tensor.detach() - ref).abs().max())])
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--global-batch", type=int, default=32, help="samples per step over all ranks")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--config", choices=sorted(CONFIGS), default="standard_hwa")
    p.add_argument("--repeats", type=int, default=4, help="programming instances in the drift evaluation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the figures here (rank 0)")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if "RANK" not in os.environ:  # plain `python`: a process group of one
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29512"),
                          RANK="0", WORLD_SIZE="1")
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} must be a multiple of the world size {world}")
    data = al.data.digits(image=True)
    model = adist.wrap(build_model(args.config), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    al.train.hwa.attach_hwa(opt, model.module)
    loss_fn = nn.CrossEntropyLoss()
    history, started = [], time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        total, steps = torch.zeros(1), 0
        for idx in shards(len(data.y_train), args.global_batch, epoch, rank, world):
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
        _dist.average_(total)
        acc = al.accuracy(model.module, (data.x_test, data.y_test))
        history.append({"epoch": epoch + 1, "loss": float(total) / steps, "test_acc": acc})
        if rank == 0:
            print(f"epoch {epoch + 1:2d}  loss {history[-1]['loss']:.4f}  test acc {acc:5.1f} %", flush=True)
    train_s = time.perf_counter() - started
    tiles = list(al.tiles(model.module))
    range_diff = max((ranks_agree(t.input_range) for t in tiles if t.input_range is not None), default=0.0)
    scale_diff = max(ranks_agree(t.out_scale) for t in tiles)
    weight_diff = max(ranks_agree(t.weight) for t in tiles)
    # one chip for all ranks: programmed with a shared seed, rank 0's state broadcast
    adist.program_same_chip(model.module, seed=3)
    chip_diff = max(ranks_agree(t.w_read) for t in tiles)
    al.unprogram(model.module)
    # drift evaluation: the grid split over the ranks, and (rank 0) the same call in one process
    times = [1.0, 3600.0, 86400.0, 3.1536e7]
    table = al.evaluate_over_time(model.module, (data.x_test, data.y_test), times=times, repeats=args.repeats,
                                  seed=7, distributed=True)
    out = {"world_size": world, "config": args.config, "history": history, "train_s": train_s, "input_range_max_diff": range_diff,
           "out_scale_max_diff": scale_diff, "weight_max_diff": weight_diff, "programmed_max_diff": chip_diff,
           "drift_table": table.to_dict("list")}
    if rank == 0:
        alone = al.evaluate_over_time(model.module, (data.x_test, data.y_test), times=times,
                                      repeats=args.repeats, seed=7)
        out["drift_table_equals_single_process"] = bool(alone.equals(table))
        print(f"world size {world}: {args.epochs} epochs in {train_s:.1f} s; max difference between ranks: "
              f"input ranges {range_diff:.3g}, output scales {scale_diff:.3g}, weights {weight_diff:.3g}, "
              f"programmed weights {chip_diff:.3g}")
        print(table.to_string(index=False))
        print(f"distributed drift table equals the single-process one: {out['drift_table_equals_single_process']}")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=1)
    dist.destroy_process_group()
    return out


if __name__ == "__main__":
    main()
