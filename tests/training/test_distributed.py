"""Process context, seeding and unwrapping."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from talkinghead.training.distributed import DistributedContext, seed_everything, unwrap


def test_single_process_defaults():
    context = DistributedContext(env={}).init("cpu")
    assert (context.rank, context.local_rank, context.world_size) == (0, 0, 1)
    assert context.is_main and not context.is_distributed
    assert context.device == torch.device("cpu") and context.backend is None
    value = torch.tensor([1.0, 3.0])
    assert context.all_reduce_mean(value) is value
    assert context.broadcast_object({"a": 1}) == {"a": 1}
    assert context.all_reduce_mean_dict({"b": torch.tensor(2.0), "a": 1}) == {"a": 1.0, "b": 2.0}
    assert DistributedContext.from_env({}).world_size == 1
    context.barrier()
    context.shutdown()


def test_environment_is_checked():
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        DistributedContext(env={"RANK": "0"})
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        DistributedContext(env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    with pytest.raises(ValueError, match="not an integer"):
        DistributedContext(env={"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="device"):
        DistributedContext(env={}).init("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            DistributedContext(env={}).init("cuda")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's dynamo import
def test_unwrap():
    net = nn.Linear(2, 2)
    assert unwrap(net) is net
    assert unwrap(nn.DataParallel(net)) is net
    compiled = torch.compile(net)  # wrapping is lazy: nothing is compiled here
    assert unwrap(compiled) is net
    assert unwrap(torch.compile(nn.DataParallel(net))) is net
    parallel = nn.DataParallel(net)  # the trainer keeps DDP (for no_sync) and strips only compile
    assert unwrap(torch.compile(parallel), keep_ddp=True) is parallel
    assert unwrap(parallel, keep_ddp=True) is parallel
    assert unwrap(None, keep_ddp=True) is None
    holder = nn.Sequential()
    holder.module = net  # a submodule that merely happens to be called "module" stays
    assert unwrap(holder) is holder


def test_seed_everything_differs_per_rank():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    assert seed_everything(5, rank=0) == 5
    first = draw()
    seed_everything(5, rank=0)
    assert draw() == first
    assert seed_everything(5, rank=1) == 6
    assert draw() != first


_WORKER = textwrap.dedent(
    """
    import torch
    from torch import nn
    from talkinghead.training.distributed import DistributedContext, unwrap
    context = DistributedContext().init("cpu")
    assert context.is_distributed and context.backend == "gloo"
    mean = context.all_reduce_mean(torch.tensor([float(context.rank), 10.0]))
    numbers = context.all_reduce_mean_dict({"r": context.rank * 2, "c": 3.0})
    assert numbers == {"c": 3.0, "r": 1.0}, numbers
    shared = context.broadcast_object({"from": context.rank})
    net = nn.Linear(2, 2)
    wrapped = nn.parallel.DistributedDataParallel(net)
    context.barrier()
    print(context.rank, context.world_size, context.is_main, mean.tolist(), shared["from"], unwrap(wrapped) is net)
    context.shutdown()
    """
)


@pytest.mark.slow  # two fresh Python processes importing torch: several seconds on 2 cores
def test_two_processes_over_gloo():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, "-c", _WORKER]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        outputs.append(out.strip())
    assert outputs == ["0 2 True [0.5, 10.0] 0 True", "1 2 False [0.5, 10.0] 0 True"]
