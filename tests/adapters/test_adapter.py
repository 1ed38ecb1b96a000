import jax
import jax.numpy as jnp
import numpy as np
import pytest

import amortized as bf
from amortized.adapters import TRANSFORMS, Adapter

# (adapter step, sampler of valid inputs) for every invertible elementwise transform
ELEMENTWISE = {
    "constrain_both": (
        lambda a: a.constrain("v", lower=-1.0, upper=2.0),
        lambda r: r.uniform(-0.99, 1.99, size=(6, 3)),
    ),
    "constrain_probit": (
        lambda a: a.constrain("v", lower=-1.0, upper=2.0, method="probit"),
        lambda r: r.uniform(-0.99, 1.99, size=(6, 3)),
    ),
    "constrain_lower": (
        lambda a: a.constrain("v", lower=0.5),
        lambda r: 0.5 + r.gamma(2, size=(6, 3)),
    ),
    "constrain_upper": (
        lambda a: a.constrain("v", upper=1.0),
        lambda r: 1.0 - r.gamma(2, size=(6, 3)),
    ),
    "constrain_array": (
        lambda a: a.constrain(
            "v", lower=np.array([0.0, -1.0, 2.0]), upper=np.array([1.0, 1.0, 5.0])
        ),
        lambda r: (
            np.array([0.0, -1.0, 2.0])
            + r.uniform(0.01, 0.99, size=(6, 3)) * np.array([1.0, 2.0, 3.0])
        ),
    ),
    "log": (lambda a: a.log("v"), lambda r: r.gamma(2, size=(6, 3))),
    "log1p": (lambda a: a.log("v", p1=True), lambda r: r.gamma(2, size=(6, 3)) - 0.5),
    "sqrt": (lambda a: a.sqrt("v"), lambda r: r.gamma(2, size=(6, 3))),
    "standardize": (
        lambda a: a.standardize("v", mean=[1.0, 2.0, 3.0], std=[0.5, 2.0, 4.0]),
        lambda r: r.normal(size=(6, 3)),
    ),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_round_trip_and_ldj_against_autodiff(name, rng):
    build, draw = ELEMENTWISE[name]
    adapter = build(Adapter())
    x = draw(rng)
    y, ldj = adapter.forward({"v": x}, log_det_jac=True)
    back = adapter.inverse(y)
    np.testing.assert_allclose(back["v"], x, rtol=1e-6, atol=1e-8)
    # reference: the derivative of the same map traced by JAX, one element at a time
    f = lambda s: adapter.forward({"v": s})["v"]  # noqa: E731
    grad = jax.vmap(
        jax.grad(lambda s, i: f(jnp.full((1, 3), s).astype(jnp.float32))[0, i]), in_axes=(0, 0)
    )
    xs = jnp.asarray(x.reshape(-1), jnp.float32)
    cols = jnp.tile(jnp.arange(3), 6)
    if name != "constrain_array":  # elementwise maps identical in every column
        ref = np.log(np.abs(np.asarray(grad(xs, cols)))).reshape(6, 3)
        np.testing.assert_allclose(ldj["v"], ref, rtol=1e-4, atol=1e-4)
    else:
        eps = 1e-6
        fd = (f(x + eps) - f(x - eps)) / (2 * eps)
        np.testing.assert_allclose(ldj["v"], np.log(np.abs(fd)), rtol=1e-5, atol=1e-5)


def test_concatenate_splits_back_and_tracks_ldj(rng):
    a = (
        Adapter()
        .constrain("s", lower=0.0)
        .concatenate(["m", "s"], into="inference_variables")
        .rename("x", "inference_conditions")
    )
    d = {"m": rng.normal(size=(5, 2)), "s": rng.gamma(2, size=(5, 1)), "x": rng.normal(size=(5, 4))}
    out, ldj = a.forward(d, log_det_jac=True)
    assert out["inference_variables"].shape == (5, 3) and out["inference_conditions"].shape == (
        5,
        4,
    )
    np.testing.assert_allclose(ldj["inference_variables"][:, :2], 0.0)
    np.testing.assert_allclose(ldj["inference_variables"][:, 2], -np.log(d["s"][:, 0]))
    back = a.inverse({"inference_variables": out["inference_variables"][None]})
    np.testing.assert_allclose(back["m"][0], d["m"])
    np.testing.assert_allclose(back["s"][0], d["s"])


def test_shape_transforms(rng):
    a = (
        Adapter()
        .as_set("y")
        .broadcast("N", to="y")
        .expand_dims("z", axis=-1)
        .one_hot("c", 3)
        .nan_to_num("w", default_value=-1.0, return_mask=True)
        .convert_dtype("float64", "float32")
        .keep(["y", "N", "z", "c", "w", "mask_w"])
    )
    w = rng.normal(size=(4, 2))
    w[0, 1] = np.nan
    d = {
        "y": rng.normal(size=(4, 10)),
        "N": 10,
        "z": rng.normal(size=(4,)),
        "c": np.array([0, 2, 1, 1]),
        "w": w,
        "drop_me": np.zeros(4),
    }
    out = a.forward(d)
    assert out["y"].shape == (4, 10, 1) and out["y"].dtype == np.float32
    assert out["N"].shape == (4, 1) and np.all(out["N"] == 10)
    assert out["z"].shape == (4, 1)
    np.testing.assert_array_equal(out["c"].argmax(-1), d["c"])
    assert out["w"][0, 1] == -1.0 and out["mask_w"][0, 1] == 0.0 and out["mask_w"][1, 0] == 1.0
    assert "drop_me" not in out
    assert a.inverse({"c": out["c"]})["c"].tolist() == [0, 2, 1, 1]


def test_config_round_trip_covers_every_transform():
    a = (
        Adapter()
        .constrain("p", lower=0, upper=1)
        .log("s")
        .sqrt("r")
        .standardize("q", mean=1.0, std=2.0)
        .concatenate(["p", "s"], into="inference_variables")
        .rename("x", "y")
        .keep(["inference_variables", "y"])
        .drop("y")
        .as_set("a")
        .as_time_series("b")
        .broadcast("N", to="a")
        .expand_dims("e", axis=1)
        .convert_dtype()
        .one_hot("c", 4)
        .nan_to_num("d", return_mask=True)
        .group(["a", "b"], into="summary_variables")
    )
    assert {t.name for t in a.transforms} == set(TRANSFORMS)
    b = Adapter.from_config(a.get_config())
    assert b.get_config() == a.get_config()


def test_group_gathers_sources_and_spreads_them_back():
    a = Adapter().group(["s", "t"], into="summary_variables")
    data = {"s": np.ones((2, 3, 1)), "t": np.zeros((2, 5, 2)), "theta": np.ones((2, 1))}
    out = a.forward(data)
    assert set(out) == {"summary_variables", "theta"}
    assert set(out["summary_variables"]) == {"s", "t"}
    back = a.inverse(out)
    assert set(back) == {"s", "t", "theta"}
    np.testing.assert_array_equal(back["t"], data["t"])


def test_adapter_errors(rng):
    with pytest.raises(KeyError, match=r"missing key\(s\) \['sigma'\]"):
        Adapter().log("sigma").forward({"mu": np.ones(3)})
    with pytest.raises(ValueError, match=r"'p' lie outside the open interval \(0.0, 1.0\)"):
        Adapter().constrain("p", lower=0, upper=1).forward({"p": np.array([[0.5], [1.5]])})
    with pytest.raises(ValueError, match="upper must exceed lower"):
        Adapter().constrain("p", lower=1, upper=0)
    with pytest.raises(ValueError, match="positive"):
        Adapter().log("s").forward({"s": np.array([[-1.0]])})
    with pytest.raises(ValueError, match="same number of dimensions"):
        Adapter().concatenate(["a", "b"], into="c").forward({"a": np.ones((2, 3)), "b": np.ones(2)})
    with pytest.raises(TypeError, match="accepted"):
        Adapter()({"a": 1}, bogus=True)
    with pytest.raises(ValueError, match="unknown transform"):
        Adapter.from_config([{"name": "nope", "params": {}}])
    with pytest.raises(RuntimeError, match="inverse before any forward"):
        Adapter().concatenate(["a", "b"], into="c").inverse({"c": np.ones((2, 2))})


def test_non_strict_forward_skips_absent_groups(rng):
    a = bf.Adapter.create_default("theta", "x")
    out = a.forward({"x": rng.normal(size=(3, 2))}, strict=False)
    assert set(out) == {"inference_conditions"}


def test_probit_constrain_maps_a_uniform_prior_to_a_standard_normal(rng):
    # reference: the standard normal CDF (SciPy); KS statistic of 20,000 draws is ~0.006
    # under the null, 0.02 would be exceeded with probability < 1e-7
    from scipy import stats

    a = Adapter().constrain("v", lower=-2.0, upper=3.0, method="probit")
    y = a.forward({"v": rng.uniform(-2.0, 3.0, size=(20_000, 1))})["v"]
    assert stats.kstest(y[:, 0], "norm").statistic < 0.02
    # values next to either bound keep their precision (float64 input)
    edge = np.array([[-2.0 + 1e-9], [3.0 - 1e-9]])
    back = a.inverse(a.forward({"v": edge}))["v"]
    np.testing.assert_allclose(back, edge, rtol=0, atol=1e-14)
    assert Adapter.from_config(a.get_config()).get_config() == a.get_config()


def test_constrain_method_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        Adapter().constrain("v", lower=0.0, upper=1.0, method="tanh")
    with pytest.raises(ValueError, match="one-sided"):
        Adapter().constrain("v", lower=0.0, method="probit")


def test_constrain_configs_saved_before_method_existed_keep_the_logit_map():
    old = [{"name": "constrain", "params": {"keys": ["v"], "lower": 0.0, "upper": 1.0}}]
    assert Adapter.from_config(old).transforms[0].method == "sigmoid"
    one_sided = [{"name": "constrain", "params": {"keys": ["v"], "lower": 0.0, "upper": None}}]
    assert Adapter.from_config(one_sided).transforms[0].method == "log"
