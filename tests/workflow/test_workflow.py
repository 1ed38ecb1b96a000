import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import amortized as bf
from amortized.approximators.serialization import ModelFileError
from amortized.networks import UNet
from amortized.training import TrainingDiverged


def prior():
    return {"mu": np.random.normal(size=2), "sigma": np.random.gamma(4.0, 0.25)}


def likelihood(mu, sigma):
    return {"x": mu + sigma * np.random.normal(size=(2,))}


def make_workflow(**kw):
    adapter = (
        bf.Adapter()
        .convert_dtype()
        .constrain("sigma", lower=0.0)
        .concatenate(["mu", "sigma"], into="inference_variables")
        .rename("x", "inference_conditions")
    )
    return bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        adapter=adapter,
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [32, 32]}),
        **kw,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wf = make_workflow()
    wf.fit_offline(
        wf.simulate(512, seed=0),
        epochs=2,
        batch_size=64,
        seed=1,
        progress=False,
        validation_data=64,
    )
    return wf


def test_sample_shapes_and_names(trained):
    out = trained.sample(conditions={"x": np.zeros((3, 2))}, num_samples=50, seed=0)
    assert set(out) == {"mu", "sigma"}
    assert out["mu"].shape == (3, 50, 2) and out["sigma"].shape == (3, 50, 1)
    assert np.all(out["sigma"] > 0)
    again = trained.sample(conditions={"x": np.zeros((3, 2))}, num_samples=50, seed=0)
    np.testing.assert_array_equal(out["mu"], again["mu"])


def test_history_is_json(trained):
    h = json.loads(json.dumps(trained.history))
    assert len(h["loss"]) == 2 and len(h["val_loss"]) == 2


def test_save_load_same_draws_in_fresh_process(trained, tmp_path):
    path = trained.save(tmp_path / "model.amz")
    ref = trained.sample(conditions={"x": np.ones((2, 2))}, num_samples=20, seed=5)["mu"]
    code = (
        "import sys, numpy as np, amortized as bf\n"
        f"wf = bf.load({str(path)!r})\n"
        "d = wf.sample(conditions={'x': np.ones((2, 2))}, num_samples=20, seed=5)\n"
        "np.save(sys.argv[1], d['mu'])\n"
    )
    out = tmp_path / "mu.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=300)
    np.testing.assert_array_equal(np.load(out), ref)
    lp = trained.log_prob(trained.simulate(4, seed=3))
    np.testing.assert_allclose(bf.load(path).log_prob(trained.simulate(4, seed=3)), lp, rtol=1e-6)


def test_save_is_atomic_and_load_rejects_bad_files(trained, tmp_path, monkeypatch):
    path = trained.save(tmp_path / "m.amz")
    good = path.read_bytes()
    # a failure while writing leaves the previous file intact and no temporary file behind
    import amortized.approximators.serialization as ser

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ser.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.amz"]

    (tmp_path / "trunc.amz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError, match="corrupted or truncated"):
        bf.load(tmp_path / "trunc.amz")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        bf.load(tmp_path / "missing.amz")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        weights = zf.read("weights.eqx")
    for name, change in (
        ("newer.amz", {"format_version": 99}),
        ("sum.amz", {"weights_sha256": "0"}),
    ):
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            zf.writestr("manifest.json", json.dumps(manifest | change))
            zf.writestr("weights.eqx", weights)
    with pytest.raises(ModelFileError, match="format version 99.*Upgrade"):
        bf.load(tmp_path / "newer.amz")
    with pytest.raises(ModelFileError, match="checksum"):
        bf.load(tmp_path / "sum.amz")


def test_edited_model_file_is_refused_by_entry(trained, tmp_path):
    # Silent failure 5: only the weights were checksummed, so adding 5 to a stored
    # standardization mean loaded and shifted every posterior by 5.
    path = trained.save(tmp_path / "m.amz")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not the temp file's 0600
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    stats = json.loads(entries["stats.json"])
    key = next(iter(stats["standardization"]))
    stats["standardization"][key]["mean"] = [m + 5.0 for m in stats["standardization"][key]["mean"]]
    edited = dict(entries, **{"stats.json": json.dumps(stats).encode()})
    for name, content in (
        ("stats.json", edited),
        ("adapter.json", dict(entries, **{"adapter.json": b"[]"})),
        ("history.json", dict(entries, **{"history.json": b"{}"})),
        ("added.txt", dict(entries, **{"added.txt": b"x"})),
    ):
        with zipfile.ZipFile(tmp_path / "edited.amz", "w") as zf:
            for n, c in content.items():
                zf.writestr(n, c)
        with pytest.raises(ModelFileError, match=f"entry '{name}'"):
            bf.load(tmp_path / "edited.amz")
    # the untouched file still loads and samples as before
    x = {"x": np.zeros((2, 2), np.float32)}
    a = trained.sample(conditions=x, num_samples=50, seed=1)["mu"]
    b = bf.load(path).sample(conditions=x, num_samples=50, seed=1)["mu"]
    np.testing.assert_array_equal(a, b)


def test_format_version_1_files_still_load(trained, tmp_path):
    # files written before every entry was checksummed: one manifest, weights checksummed
    import hashlib

    path = trained.save(tmp_path / "m.amz")
    with zipfile.ZipFile(path) as zf:
        e = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(e["manifest.json"]) | {
        "format_version": 1,
        "adapter": json.loads(e["adapter.json"]),
        "stats": json.loads(e["stats.json"])["standardization"],
        "history": json.loads(e["history.json"]),
        "weights_sha256": hashlib.sha256(e["weights.eqx"]).hexdigest(),
    }
    with zipfile.ZipFile(tmp_path / "v1.amz", "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("weights.eqx", e["weights.eqx"])
    x = {"x": np.zeros((2, 2), np.float32)}
    np.testing.assert_array_equal(
        bf.load(tmp_path / "v1.amz").sample(conditions=x, num_samples=20, seed=1)["mu"],
        trained.sample(conditions=x, num_samples=20, seed=1)["mu"],
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_online_training_and_restore_best():
    wf = make_workflow()
    h = wf.fit_online(
        epochs=2,
        num_batches_per_epoch=4,
        batch_size=32,
        validation_data=64,
        seed=3,
        restore_best=True,
        progress=False,
    )
    assert len(h["loss"]) == 2 and all(np.isfinite(h["loss"]))


def test_bad_input_errors(trained):
    wf = make_workflow()
    data = wf.simulate(64, seed=0)
    with pytest.raises(KeyError, match=r"missing key\(s\) \['sigma'\]"):
        wf.fit_offline({k: v for k, v in data.items() if k != "sigma"}, epochs=1)
    with pytest.raises(
        ValueError,
        match=r"non-finite.*input key\(s\) \['x'\]: 'x' has 1 non-finite value.*index \(3, 1\)",
    ):
        bad = dict(data, x=data["x"].copy())
        bad["x"][3, 1] = np.nan
        wf.fit_offline(bad, epochs=1)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        wf.fit_offline(data, epochs=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got -3"):
        wf.fit_offline(data, epochs=-3)
    with pytest.raises(ValueError, match="empty"):
        wf.fit_offline({k: v[:0] for k, v in data.items()}, epochs=1)
    with pytest.raises(TypeError, match=r"unknown keyword.*\['epoch'\]"):
        wf.fit_offline(data, epoch=1)
    with pytest.raises(TypeError, match=r"BasicWorkflow: unknown keyword.*\['learning_rate'\]"):
        make_workflow(learning_rate=1e-3)
    with pytest.raises(RuntimeError, match="not trained yet"):
        wf.sample(conditions={"x": np.zeros((1, 2))}, num_samples=5)
    with pytest.raises(
        ValueError, match=r"'inference_conditions' has shape \(2, 3\).*\(batch, 2\)"
    ):
        trained.sample(conditions={"x": np.zeros((2, 3))}, num_samples=5)
    with pytest.raises(ValueError, match=r"disagree in their leading \(batch\) dimension"):
        wf.fit_offline(dict(data, x=data["x"][:10]), epochs=1)
    with pytest.raises(TypeError, match="dict of arrays"):
        wf.fit_offline(np.zeros(3), epochs=1)
    with pytest.raises(ValueError, match="summary_network"):
        bf.BasicWorkflow(inference_variables="mu", summary_variables="x").fit_offline(
            {"mu": np.zeros((4, 1)), "x": np.zeros((4, 5, 1))}, epochs=1
        )


def test_divergence_names_epoch_and_batch():
    wf = make_workflow(initial_learning_rate=1e9)
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, batch \d+.*learning rate"):
        wf.fit_offline(
            wf.simulate(256, seed=0),
            epochs=3,
            batch_size=32,
            seed=0,
            progress=False,
            early_stopping=False,
        )


def test_guide_examples_run_as_written():
    # the user guide's CouplingFlow, FlowMatching and ContinuousApproximator examples, verbatim
    approximator = bf.ContinuousApproximator(
        inference_network=bf.networks.FlowMatching(),
        summary_network=bf.networks.SetTransformer(),  # optional summary backbone
    )
    inference_network = bf.networks.CouplingFlow()
    inference_network = bf.networks.CouplingFlow(
        depth=10,
        transform="spline",
        subnet_kwargs={"widths": [256, 256, 256], "dropout": 0.05},
    )
    inference_network = bf.networks.CouplingFlow(
        base_distribution="normal",
    )
    approximator = bf.ContinuousApproximator(
        inference_network=inference_network,
        summary_network=bf.networks.SetTransformer(),
    )
    inference_network = bf.networks.FlowMatching()
    inference_network = bf.networks.FlowMatching(
        use_optimal_transport=True,
        subnet_kwargs={"widths": [256, 256, 256], "dropout": 0.05},
    )
    inference_network = bf.networks.FlowMatching(
        integrate_kwargs={"steps": 20},
    )
    approximator = bf.ContinuousApproximator(
        inference_network=inference_network,
        summary_network=bf.networks.TimeSeriesTransformer(),
    )
    assert isinstance(approximator.summary_network, bf.networks.TimeSeriesTransformer)
    # 6.4 DiffusionModel, verbatim
    inference_network = bf.networks.DiffusionModel()
    inference_network = bf.networks.DiffusionModel(
        noise_schedule="cosine",
        prediction_type="velocity",
        loss_type="velocity",
        subnet_kwargs={"widths": [256, 256, 256]},
    )
    inference_network = bf.networks.DiffusionModel(
        integrate_kwargs={"steps": 20},
    )
    approximator = bf.ContinuousApproximator(
        inference_network=inference_network,
        summary_network=bf.networks.SetTransformer(),
    )
    assert approximator.inference_network.config["integrate_kwargs"]["steps"] == 20
    # 6.5.1 ConsistencyModel, verbatim
    num_epochs = 100
    num_batches = 250  # = dataset_size / batch_size
    inference_network = bf.networks.ConsistencyModel(
        total_steps=num_epochs * num_batches,
    )
    inference_network = bf.networks.ConsistencyModel(
        total_steps=num_epochs * num_batches,
        s0=2,
        s1=200,
        subnet_kwargs={"widths": [256, 256, 256]},
    )
    approximator = bf.ContinuousApproximator(
        inference_network=inference_network,
        summary_network=bf.networks.SetTransformer(),
    )
    assert approximator.inference_network.config["total_steps"] == 25000
    # 6.5.2 StableConsistencyModel, verbatim
    inference_network = bf.networks.StableConsistencyModel()
    inference_network = bf.networks.StableConsistencyModel(
        subnet_kwargs={"widths": [256, 256, 256], "dropout": 0.05},
    )
    approximator = bf.ContinuousApproximator(
        inference_network=inference_network,
        summary_network=bf.networks.SetTransformer(),
    )
    assert approximator.inference_network.config["subnet_kwargs"]["dropout"] == 0.05
    # 6.6.3 image generation, verbatim (its training: tests/networks/test_image_targets.py)
    H, W = 8, 8

    def prior():
        return dict(target_image=np.random.normal(size=(H, W, 1)).astype("float32"))

    def likelihood(target_image):
        noise = np.random.normal(0, 0.3, size=(H, W, 1)).astype("float32")
        return dict(condition_map=(target_image + noise).astype("float32"))

    simulator = bf.make_simulator([prior, likelihood])
    adapter = (
        bf.Adapter()
        .rename("target_image", "inference_variables")
        .rename("condition_map", "inference_conditions")
    )
    inference_network = bf.networks.DiffusionModel(
        subnet=bf.networks.UNet(), prediction_type="velocity", noise_schedule="cosine"
    )
    workflow = bf.BasicWorkflow(
        simulator=simulator,
        inference_network=inference_network,
        adapter=adapter,
        initial_learning_rate=1e-4,
    )
    assert workflow.simulate(2, seed=0)["target_image"].shape == (2, H, W, 1)
    assert inference_network.config["subnet"] == {"class": "UNet", "config": UNet().config}
