"""Training over several processes (``jax.distributed`` with CPU processes): the run of two
processes with one device each is the run of one process with two devices."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(num_processes: int, devices_each: int, out: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "AMORTIZED_CPU_DEVICES": str(devices_each), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # the device count comes from AMORTIZED_CPU_DEVICES
    port = str(_free_port())
    out.mkdir()
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(num_processes), str(i), port, str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(num_processes)
    ]


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            output, _ = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a training process did not finish in 300 s")
        assert p.returncode == 0, output[-3000:]


def _params(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_two_processes_train_the_model_of_one_process_with_two_devices(tmp_path):
    procs = _launch(2, 1, tmp_path / "two") + _launch(1, 2, tmp_path / "one")
    _wait(procs)
    runs = [json.loads((tmp_path / "two" / f"run_{i}.json").read_text()) for i in (0, 1)]
    ref = json.loads((tmp_path / "one" / "run_0.json").read_text())
    assert [r["process_count"] for r in runs] == [2, 2] and ref["process_count"] == 1
    assert runs[0]["devices"] == [2, 2, 2] == ref["devices"]
    # the same global batches and keys, split over two devices either way: the same
    # gradient means up to the order of float32 sums (reference: the one-process run)
    ref_params = _params(tmp_path / "one" / "params_0.npz")
    for i in (0, 1):
        got = _params(tmp_path / "two" / f"params_{i}.npz")
        assert len(got) == len(ref_params)
        for a, b in zip(got, ref_params, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(runs[0]["loss"], ref["loss"], rtol=1e-5)
    # after training each process samples on its own copy of the networks
    assert runs[0]["draws_shape"] == runs[1]["draws_shape"] == [2, 5, 2]
    # one process writes the checkpoints, the same ones as a single process
    written = sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir())
    assert written
    assert "not divisible by the 2 devices of the 2 processes" in runs[0]["odd_batch_error"]
    assert ref["odd_batch_error"] is None  # one process: fewer devices, with a warning
