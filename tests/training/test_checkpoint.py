"""Checkpoint and resume: a run killed at any epoch and resumed ends with the weights of a
run that was never interrupted; damaged checkpoints are skipped, foreign ones refused."""

import signal
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

import amortized as bf
from amortized.training import checkpoint
from amortized.training.checkpoint import CheckpointWarning

# a child process trains and is killed by SIGKILL right after writing checkpoint {kill_at}
CHILD = """
import os, signal, sys
import numpy as np
import amortized as bf
from amortized.training import checkpoint
sys.path.insert(0, {here!r})
from test_checkpoint import workflow, DATA_SEED, EPOCHS
write = checkpoint.Checkpoints.write
def write_then_die(self, epochs_done, tree, meta):
    out = write(self, epochs_done, tree, meta)
    if epochs_done == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
checkpoint.Checkpoints.write = write_then_die
wf = workflow({online})
if {online}:
    wf.fit_online(epochs=EPOCHS, num_batches_per_epoch=8, batch_size=32, validation_data=64,
                  seed=3, progress=False, checkpoint_dir=sys.argv[1], resume=True)
else:
    data = wf.simulate(600, seed=DATA_SEED)
    wf.fit_offline(data, epochs=EPOCHS, batch_size=32, seed=3, progress=False,
                   checkpoint_dir=sys.argv[1], resume=True)
"""
EPOCHS = 12
DATA_SEED = 1


def workflow(online: bool = False) -> bf.BasicWorkflow:
    def prior():
        return {"theta": np.random.normal(size=2)}

    def likelihood(theta):
        return {"x": theta + 0.3 * np.random.normal(size=2)}

    return bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        adapter=bf.Adapter.create_default("theta", "x"),
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
    )


def _fit(wf, online, **kw):
    if online:
        return wf.fit_online(
            epochs=EPOCHS, num_batches_per_epoch=8, batch_size=32, validation_data=64, seed=3,
            progress=False, **kw,
        )  # fmt: skip
    return wf.fit_offline(
        wf.simulate(600, seed=DATA_SEED), epochs=EPOCHS, batch_size=32, seed=3, progress=False,
        **kw,
    )  # fmt: skip


def _params(wf):
    leaves = jax.tree.leaves(eqx.filter(wf.approximator.nets, eqx.is_inexact_array))
    return np.concatenate([np.ravel(np.asarray(x)) for x in leaves])


@pytest.mark.parametrize("online", [False, True])
def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, online, monkeypatch):
    reference = workflow(online)
    hist = _fit(reference, online)
    # early stopping may end the offline run before EPOCHS; either way the resumed run must
    # make the same decisions
    ckpt = tmp_path / "ckpt"
    kill_at = int(np.random.default_rng(7 + online).integers(2, 8))  # a seeded random epoch
    code = CHILD.format(here=str(Path(__file__).parent), online=online, kill_at=kill_at)
    child = subprocess.run(
        [sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, timeout=900
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    newest = sorted(p.name for p in ckpt.glob("*.amc"))[-1]
    assert newest == f"checkpoint-{kill_at:06d}.amc"
    resumed = workflow(online)
    written = []
    write = checkpoint.Checkpoints.write
    monkeypatch.setattr(
        checkpoint.Checkpoints, "write", lambda self, e, *a: written.append(e) or write(self, e, *a)
    )
    hist2 = _fit(resumed, online, checkpoint_dir=ckpt, resume=True)
    assert written[0] == kill_at + 1  # it went on from the checkpoint, not from the start
    # the same steps on the same batches from the same state: equal up to float32 noise of
    # XLA's reductions (identical programs on one machine give identical bits)
    np.testing.assert_allclose(_params(resumed), _params(reference), rtol=0, atol=1e-6)
    np.testing.assert_allclose(hist2["loss"], hist["loss"], rtol=1e-6)
    assert hist2.get("stopped_epoch") == hist.get("stopped_epoch")


def test_damaged_checkpoints_fall_back_and_foreign_ones_are_refused(tmp_path, monkeypatch):
    wf = workflow()
    data = wf.simulate(300, seed=0)
    wf.fit_offline(data, epochs=3, batch_size=32, seed=1, progress=False,
                   early_stopping=False, checkpoint_dir=tmp_path, checkpoint_every=1)  # fmt: skip
    files = sorted(tmp_path.glob("*.amc"))
    assert [p.name for p in files] == ["checkpoint-000002.amc", "checkpoint-000003.amc"]
    reference = _params(wf)
    # a truncated newest checkpoint: the previous one is used, with a warning
    files[-1].write_bytes(files[-1].read_bytes()[:100])
    again = workflow()
    with pytest.warns(CheckpointWarning, match="checkpoint-000003.amc.*unreadable"):
        again.fit_offline(data, epochs=3, batch_size=32, seed=1, progress=False,
                          early_stopping=False, checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    np.testing.assert_allclose(_params(again), reference, rtol=0, atol=1e-6)
    # another network, or other settings, cannot continue this run
    other = bf.BasicWorkflow(
        simulator=wf.simulator,
        adapter=bf.Adapter.create_default("theta", "x"),
        inference_network=bf.networks.CouplingFlow(depth=3, subnet_kwargs={"widths": [16]}),
    )
    with pytest.raises(ValueError, match="another model or other training settings.*depth"):
        other.fit_offline(data, epochs=3, batch_size=32, seed=1, progress=False,
                          early_stopping=False, checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    with pytest.raises(ValueError, match="batch_size: checkpoint 32, this run 64"):
        workflow().fit_offline(data, epochs=3, batch_size=64, seed=1, progress=False,
                               early_stopping=False, checkpoint_dir=tmp_path,
                               resume=True)  # fmt: skip
    # another optimizer (here the default one without its parameter average) cannot either
    monkeypatch.setattr(bf.training.optimizer, "AVERAGE_DECAY", 0.0)
    with pytest.raises(ValueError, match="optimizer: checkpoint .*'average_decay': 0.999"):
        workflow().fit_offline(data, epochs=3, batch_size=32, seed=1, progress=False,
                               early_stopping=False, checkpoint_dir=tmp_path,
                               resume=True)  # fmt: skip
    monkeypatch.undo()
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        workflow().fit_offline(data, epochs=3, checkpoint_dir=tmp_path, checkpoint_every=0)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        workflow().fit_offline(data, epochs=3, resume=True)
