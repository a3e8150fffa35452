"""GPUS=n keeps the recipe's batch by dividing update_freq by n: fairseq's distributed training,
run here as two CPU processes (gloo), makes the same update as one process with twice the
update_freq.

fairseq launches its own processes only for GPUs: `distributed_world_size=2` without one stops
in fairseq/distributed/utils.py (_infer_single_node_init: "world size is 2 but have 0
available devices"), and its spawn starts min(torch.cuda.device_count(), world size)
processes. So each rank is started by hand here, with an explicit init method.
"""
import socket
import subprocess
import sys
from pathlib import Path

import torch

from conftest import REPO

TRAIN = Path(sys.executable).with_name("fairseq-hydra-train")
# one update, the same for any batch split: no masks, no dropout; one decay step of the lr
ONE_UPDATE = ["optimization.max_update=1", "lr_scheduler.phase_ratio=[0.0,0.0,1.0]",
              "dataset.disable_validation=true", "checkpoint.no_save_optimizer_state=true",
              "++model.apply_mask=false", "++model.dropout=0", "++model.attention_dropout=0",
              "++model.activation_dropout=0", "++model.final_dropout=0",
              "++model.dropout_input=0", "++model.layerdrop=0",
              "dataset.max_tokens=200000"]  # the 22 s split in two batches or more


def train(env, out, *overrides, rank=None):
    command = [str(TRAIN), "--config-dir", str(REPO / "recipes/finetune"), "--config-name",
               "10min", "pretrained=tiny", "protocol=tiny", "speed=plain", "common.seed=1",
               f"task.data={env / 'manifests/10min-0'}",
               f"model.w2v_path={env / 'pretrained/tiny.pt'}", "task.normalize=false",
               f"checkpoint.save_dir={out}", f"hydra.run.dir={out}/hydra-{rank}",
               *ONE_UPDATE, *overrides]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
                                 "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def weights(out):
    return torch.load(out / "checkpoint_last.pt", weights_only=False)["model"]


def test_two_gloo_processes_make_the_update_of_one_with_twice_the_update_freq(tiny_env, tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    ranks = [train(tiny_env, tmp_path / "two", "distributed_training.distributed_world_size=2",
                   "distributed_training.distributed_backend=gloo",
                   f"distributed_training.distributed_init_method=tcp://127.0.0.1:{port}",
                   "distributed_training.distributed_no_spawn=true",
                   f"distributed_training.distributed_rank={rank}",
                   "optimization.update_freq=[1]", rank=rank) for rank in (0, 1)]
    one = train(tiny_env, tmp_path / "one", "distributed_training.distributed_world_size=1",
                "optimization.update_freq=[2]", rank="single")
    for proc in (*ranks, one):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    two, single = weights(tmp_path / "two"), weights(tmp_path / "one")
    pretrained = torch.load(tiny_env / "pretrained/tiny.pt", weights_only=False)["model"]
    assert two.keys() == single.keys()
    assert all(torch.allclose(two[k], single[k], atol=1e-6) for k in two)
    # and the update did something: the transformer moved away from the pre-trained weights
    moved = [k for k in pretrained if f"w2v_encoder.w2v_model.{k}" in two and not torch.equal(
        pretrained[k], two[f"w2v_encoder.w2v_model.{k}"])]
    assert any("encoder.layers" in k for k in moved)
