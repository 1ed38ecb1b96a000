"""One invariant suite over every inference network: shapes, invertibility, log_prob against a
brute-force change of variables with jax.jacobian, gradients reach every parameter,
serialization round trip, and no recompilation on a second call."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amortized.networks import (
    INFERENCE_NETWORKS,
    ConsistencyModel,
    CouplingFlow,
    DiffusionModel,
    FlowMatching,
    RatioNetwork,
    ScoringRuleNetwork,
    StableConsistencyModel,
)
from amortized.networks.distributions import base_log_prob
from amortized.networks.integrate import solve_ode
from amortized.scoring_rules import MeanScore, MvNormalScore, QuantileScore

# name -> (unbuilt network, dim, cond_dim)
REGISTRY = {
    "coupling_affine": (CouplingFlow(depth=3, subnet_kwargs={"widths": [16, 16]}), 3, 2),
    "coupling_spline": (
        CouplingFlow(depth=3, transform="spline", subnet_kwargs={"widths": [16, 16]}),
        3,
        2,
    ),
    # also the alternating transform: layer 0 affine, layer 1 spline
    "coupling_student_swap": (
        CouplingFlow(
            depth=2,
            transform="affine_spline",
            base_distribution="student_t",
            permutation="swap",
            use_actnorm=False,
            subnet_kwargs={"widths": [16]},
        ),
        4,
        1,
    ),
    "coupling_dim1_uncond": (CouplingFlow(depth=2, subnet_kwargs={"widths": [8]}), 1, 0),
    # affine layers, the last a spline
    "coupling_final_spline": (
        CouplingFlow(depth=3, transform="affine_final_spline", subnet_kwargs={"widths": [16]}),
        3,
        2,
    ),
    "flow_matching": (
        FlowMatching(subnet_kwargs={"widths": [16, 16]}, integrate_kwargs={"steps": 32}),
        2,
        2,
    ),
    "flow_matching_ot": (
        FlowMatching(
            subnet_kwargs={"widths": [16]},
            use_optimal_transport=True,
            integrate_kwargs={"method": "heun", "steps": 32},
        ),
        3,
        1,
    ),
    "diffusion_edm": (
        DiffusionModel(subnet_kwargs={"widths": [16, 16]}, integrate_kwargs={"steps": 32}),
        2,
        2,
    ),
    "diffusion_cosine_velocity": (
        DiffusionModel(
            subnet_kwargs={"widths": [16]},
            noise_schedule="cosine",
            prediction_type="velocity",
            loss_type="noise",
            drop_cond_prob=0.2,
            guidance_scale=0.5,
            integrate_kwargs={"method": "midpoint", "steps": 32},
        ),
        3,
        1,
    ),
    "consistency_ct": (
        ConsistencyModel(total_steps=100, subnet_kwargs={"widths": [16, 16]}, sampling_steps=3),
        2,
        2,
    ),
    "consistency_stable": (
        StableConsistencyModel(
            subnet_kwargs={"widths": [16]},
            weight_mlp_kwargs={"widths": [8]},
            drop_cond_prob=0.2,
            guidance_scale=0.5,
        ),
        3,
        1,
    ),
    # a point estimator with a parametric rule, so that it has draws and a density
    "scoring_rules": (
        ScoringRuleNetwork(
            scoring_rules={
                "mean": MeanScore(),
                "q": QuantileScore(q=[0.2, 0.8]),
                "mvn": MvNormalScore(),
            },
            subnet_kwargs={"widths": [16]},
        ),
        3,
        2,
    ),
    # no draws and no density: a classifier of (theta, x) pairs (contrastive NRE)
    "ratio": (RatioNetwork(K=3, subnet_kwargs={"widths": [16]}), 3, 2),
}
STEP = jnp.int32(7)  # the optimizer step a scheduled loss is evaluated at


def test_registry_covers_every_inference_network():
    covered = {type(net).__name__ for net, _, _ in REGISTRY.values()}
    assert covered == set(INFERENCE_NETWORKS)


def built(name, seed=0, noise=0.05):
    """The network with parameters perturbed away from its (partly zero) initialization, so
    every parameter influences the output."""
    net, dim, cond_dim = REGISTRY[name]
    net = net.build(dim, cond_dim, jax.random.key(seed))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [l + noise * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static), dim, cond_dim


def inputs(dim, cond_dim, n=5, seed=3):
    kx, kc = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (n, dim)), jax.random.normal(kc, (n, cond_dim))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_shapes_serialization_and_a_single_compilation(name):
    # one jitted function of (network, inputs) serves three checks, so each network
    # compiles once: eager calls dispatch op by op (3-5x slower), and separate tests
    # compiled the same function three times
    net, dim, cond_dim = built(name)
    traces = []

    @eqx.filter_jit
    def run(n, x, c, key):
        traces.append(1)
        log_q = n.log_prob(x, c) if n.has_log_prob else None
        draws = n.sample(key, c) if getattr(n, "can_sample", True) else None
        return log_q, draws, n.loss(x, c, key, True, STEP)

    x, c = inputs(dim, cond_dim)
    log_q, draws, loss = run(net, x, c, jax.random.key(0))
    assert loss.shape == () and np.isfinite(loss)
    if getattr(net, "can_sample", True):
        assert draws.shape == (5, dim)
    else:
        with pytest.raises(NotImplementedError, match="no draws"):
            net.sample(jax.random.key(0), c)
    if net.has_log_prob:
        assert log_q.shape == (5,) and np.all(np.isfinite(log_q))
    else:
        assert net.log_prob_caveat is not None
        with pytest.raises(NotImplementedError, match="has no density"):
            net.log_prob(x, c)
    # saved and rebuilt from the options alone: the same outputs
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, net)
    buf.seek(0)
    skeleton = type(net)(**net.config).build(dim, cond_dim, jax.random.key(99))
    loaded = eqx.tree_deserialise_leaves(buf, skeleton)
    for a, b in zip(
        jax.tree.leaves(run(loaded, x, c, jax.random.key(0))),
        jax.tree.leaves((log_q, draws, loss)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # new inputs, and a rebuilt network with the same options and sizes, share the
    # compiled function
    x2, c2 = inputs(dim, cond_dim, seed=7)
    run(net, x2, c2, jax.random.key(1))
    run(built(name, seed=5)[0], x2, c2, jax.random.key(1))
    assert len(traces) == 1


@pytest.mark.parametrize("name", [n for n in sorted(REGISTRY) if n.startswith("coupling")])
def test_coupling_invertible_and_log_prob_matches_jacobian(name):
    net, dim, cond_dim = built(name)
    x, c = inputs(dim, cond_dim)
    # jitted: eager calls of a spline flow dispatch thousands of small operations
    z, logdet, x_back, log_q, (draws, lq) = eqx.filter_jit(
        lambda n: (
            *n.forward(x, c),
            n.inverse(n.forward(x, c)[0], c),
            n.log_prob(x, c),
            n.sample_and_log_prob(jax.random.key(3), c),
        )
    )(net)
    # float32 round trip through a few layers: 1e-4 relative is several ulps per layer
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    # jitted: an eager jacobian of a spline flow dispatches thousands of small operations
    jac = jax.jit(jax.vmap(jax.jacobian(lambda xi, ci: net._to_latent(xi, ci)[0])))(x, c)
    ref_logdet = jnp.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(logdet, ref_logdet, rtol=1e-4, atol=1e-4)
    ref = base_log_prob(net.base, z, net.df) + ref_logdet
    np.testing.assert_allclose(log_q, ref, rtol=1e-4, atol=1e-4)
    # sampling with its density: the inverse pass's log|det dx/dz| against jax.jacobian of
    # the inverse map, and log q of the draws against the forward log_prob
    zs, inv_logdet, inv_jac, lq_fwd = eqx.filter_jit(
        lambda n: (
            zs := n.forward(draws, c)[0],
            jax.vmap(lambda zi, ci: n._from_latent(zi, ci)[1])(zs, c),
            jax.vmap(jax.jacobian(lambda zi, ci: n._from_latent(zi, ci)[0]))(zs, c),
            n.log_prob(draws, c),
        )
    )(net)
    np.testing.assert_allclose(inv_logdet, jnp.linalg.slogdet(inv_jac)[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lq, lq_fwd, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", [n for n in sorted(REGISTRY) if n.startswith("flow")])
def test_flow_matching_log_prob_matches_jacobian_of_the_flow(name):
    net, dim, cond_dim = built(name)
    x0, c = inputs(dim, cond_dim)
    opts = dict(net.integrate)

    def push(a, ci):
        return solve_ode(lambda t, y: net.velocity(y[None], t, ci[None])[0], a, 0.0, 1.0, opts)

    x1 = jax.vmap(push)(x0, c)
    jac = jax.vmap(jax.jacobian(push))(x0, c)
    ref = base_log_prob("normal", x0, 0.0) - jnp.linalg.slogdet(jac)[1]
    # forward and backward solves discretize differently: 32 fixed steps of a 2nd-order
    # method leave an error of order 1e-4 here; 2e-3 allows for float32 accumulation
    np.testing.assert_allclose(net.log_prob(x1, c), ref, atol=2e-3)


@pytest.mark.parametrize("name", [n for n in sorted(REGISTRY) if n.startswith("diffusion")])
def test_diffusion_log_prob_matches_jacobian_of_the_sampler(name):
    net, dim, cond_dim = built(name)
    _, c = inputs(dim, cond_dim)
    key = jax.random.key(0)
    z1 = jax.random.normal(jax.random.split(key)[0], (c.shape[0], dim))  # sample's own noise
    opts = dict(net.integrate)

    def push(a, ci):  # the sampler's map from noise at t = 1 to a draw at t = 0
        return solve_ode(lambda t, y: net.ode_field(y, ci, t), a, 1.0, 0.0, opts)

    x = jax.vmap(push)(z1, c)
    # the same map as sample's batched solve (float32 summation order aside)
    np.testing.assert_allclose(net.sample(key, c), x, rtol=1e-5, atol=1e-5)
    jac = jax.vmap(jax.jacobian(push))(z1, c)
    ref = base_log_prob("normal", z1, 0.0) - jnp.linalg.slogdet(jac)[1]
    # forward and backward solves discretize differently: 32 fixed steps of a 2nd-order
    # method leave an error of order 1e-4 here; 2e-3 allows for float32 accumulation
    np.testing.assert_allclose(net.log_prob(x, c), ref, atol=2e-3)


def test_flow_matching_hutchinson_is_unbiased():
    net = FlowMatching(
        subnet_kwargs={"widths": [16]}, exact_divergence_max_dim=1, integrate_kwargs={"steps": 16}
    ).build(3, 1, jax.random.key(0))
    exact = FlowMatching(subnet_kwargs={"widths": [16]}, integrate_kwargs={"steps": 16}).build(
        3, 1, jax.random.key(0)
    )
    x, c = inputs(3, 1, n=2)
    many = eqx.filter_jit(lambda n, keys: jax.vmap(lambda k: n.log_prob(x, c, key=k))(keys))
    est = np.mean(many(net, jax.random.split(jax.random.key(0), 200)), axis=0)
    # the estimate's per-key spread here is ~0.05; the mean of 200 keys has sd ~0.004
    np.testing.assert_allclose(est, exact.log_prob(x, c), atol=0.02)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_gradients_reach_every_parameter(name):
    net, dim, cond_dim = built(name)
    x, c = inputs(dim, cond_dim, n=16)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    # jitted: the eager gradient of a spline flow dispatches thousands of small operations
    grads = jax.jit(
        jax.grad(lambda p: eqx.combine(p, static).loss(x, c, jax.random.key(2), True, STEP))
    )(params)
    flat, _ = jax.tree_util.tree_flatten_with_path(grads)
    # zero-size leaves (a layer with no inputs, dim 1 without conditions) hold no parameter
    dead = [
        jax.tree_util.keystr(path) for path, g in flat if g.size and not np.any(np.asarray(g) != 0)
    ]
    assert not dead, f"parameters without gradient: {dead}"


def test_coupling_transforms_put_splines_where_named():
    def kinds(transform, depth):
        net = CouplingFlow(depth=depth, transform=transform, subnet_kwargs={"widths": [8]})
        return [layer.transform for layer in net.build(3, 1, jax.random.key(0)).layers]

    assert kinds("affine_final_spline", 4) == ["affine", "affine", "affine", "spline"]
    assert kinds("affine_final_spline", 1) == ["spline"]
    assert kinds("affine_spline", 3) == ["affine", "spline", "affine"]
    assert kinds("affine", 2) == ["affine", "affine"]


def test_unknown_options_list_accepted():
    with pytest.raises(TypeError, match=r"unknown keyword.*\['depht'\].*accepted.*depth"):
        CouplingFlow(depht=4)
    with pytest.raises(TypeError, match=r"subnet_kwargs.*\['width'\].*accepted.*widths"):
        CouplingFlow(subnet_kwargs={"width": [8]})
    with pytest.raises(ValueError, match="transform must be one of"):
        CouplingFlow(transform="quadratic")
    # options the chosen transform or base has no use for raise (they would configure
    # nothing); the defaults pass, as saved configurations carry them
    with pytest.raises(ValueError, match=r"transform_kwargs \{'bins': 8\}.*transform='affine'"):
        CouplingFlow(transform="affine", transform_kwargs={"bins": 8})
    with pytest.raises(ValueError, match=r"df=3.*base_distribution='normal'"):
        CouplingFlow(df=3)
    CouplingFlow(transform="affine", transform_kwargs={"bins": 16, "bound": 5.0}, df=5.0)
    CouplingFlow(transform="spline", transform_kwargs={"bins": 8})
    CouplingFlow(transform_kwargs={"bins": 8})  # the default's final spline takes them
    CouplingFlow(base_distribution="student_t", df=3)
    with pytest.raises(TypeError, match=r"integrate_kwargs.*\['step'\]"):
        FlowMatching(integrate_kwargs={"step": 3})
    with pytest.raises(ValueError, match="method must be one of"):
        FlowMatching(integrate_kwargs={"method": "rk99"})
    with pytest.raises(RuntimeError, match="no parameters yet"):
        CouplingFlow().sample(jax.random.key(0), jnp.zeros((2, 1)))
    # on/off options take True or False, not a string read by its truthiness
    with pytest.raises(ValueError, match="use_actnorm must be one of"):
        CouplingFlow(use_actnorm="no")
    with pytest.raises(ValueError, match="use_optimal_transport must be one of"):
        FlowMatching(use_optimal_transport="yes")
    with pytest.raises(ValueError, match="residual must be one of"):
        FlowMatching(subnet_kwargs={"residual": "no"}).build(2, 1, jax.random.key(0))


def test_flow_matching_log_prob_is_exact_above_16_dimensions_by_default():
    # Silent failure 7: above 16 dimensions log_prob was a Hutchinson estimate with a fixed
    # key, passed to PSIS as an exact log q. Reference: the change of variables through the
    # same discretized flow, by jax.jacobian (as in the test above), at 20 dimensions.
    dim = 20
    net = FlowMatching(subnet_kwargs={"widths": [16]}, integrate_kwargs={"steps": 8}).build(
        dim, 1, jax.random.key(0)
    )
    assert not net.log_prob_is_estimate
    x0, c = inputs(dim, 1, n=2)
    opts = dict(net.integrate)

    def push(a, ci):
        return solve_ode(lambda t, y: net.velocity(y[None], t, ci[None])[0], a, 0.0, 1.0, opts)

    x1 = jax.vmap(push)(x0, c)
    jac = jax.vmap(jax.jacobian(push))(x0, c)
    ref = base_log_prob("normal", x0, 0.0) - jnp.linalg.slogdet(jac)[1]
    # forward and backward 8-step midpoint solves differ by O(1e-3) at this size
    np.testing.assert_allclose(net.log_prob(x1, c), ref, atol=1e-2)
    # asked for, the estimate says so, and its key is part of the saved configuration
    est = FlowMatching(
        subnet_kwargs={"widths": [16]}, exact_divergence_max_dim=16, hutchinson_seed=3
    ).build(dim, 1, jax.random.key(0))
    assert est.log_prob_is_estimate and est.config["hutchinson_seed"] == 3
