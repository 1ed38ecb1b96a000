"""The paths a user repeats compile once: a long session must not keep compiling (each
compilation keeps its machine code in the process; about 60 NumPyro compilations once
exhausted the memory maps of a benchmark and crashed it)."""

import numpyro
import numpyro.distributions as dist
from jax import monitoring

import amortized as bf

COMPILES = [0]


def _count(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES[0] += 1


monitoring.register_event_duration_secs_listener(_count)


def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("n", 8):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def _compiles(fn) -> int:
    before = COMPILES[0]
    fn()
    return COMPILES[0] - before


def test_repeated_fits_samples_and_workflow_runs_compile_a_bounded_number_of_times():
    m = bf.NumPyroModel(model, observed="y")
    wf = bf.BasicWorkflow(
        simulator=m,
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
    )
    train = m.sample(512, seed=0)

    def fit(seed):
        wf.fit_offline(train, epochs=2, batch_size=64, seed=seed, progress=False)

    pool = m.sample(64, seed=1)["y"]  # simulated once: NumPyro compiles per batch size

    def sample(n, seed):
        wf.sample(conditions={"y": pool[seed : seed + n]}, num_samples=50, seed=seed)

    abw = bf.AmortizedBayesianWorkflow(
        wf,
        m,
        num_samples=100,
        force="psis",
        reference_simulations=200,
        chees_warmup=50,
        chees_draws=50,
        nuts_warmup=50,
        nuts_draws=50,
        num_superchains=2,
        num_subchains=2,
    )

    def run(seed):
        abw.run({"y": pool[3 * seed : 3 * seed + 3]}, seed=seed)

    # first use of each path compiles (the counter sees it, so the checks below can fail)
    assert _compiles(lambda: fit(0)) > 0
    assert _compiles(lambda: sample(5, 0)) > 0
    run(0)
    run(1)
    # a second fit with the same settings (another ensemble member, a multiverse analysis)
    # and sampling for many batches of datasets (5 and 7 share the compiled bucket of 8)
    assert _compiles(lambda: [fit(s) for s in (1, 2, 3)]) == 0
    assert _compiles(lambda: [sample(n, s) for s, n in enumerate((5, 7, 6, 8))]) == 0
    # workflow runs on new data: a dataset may take a step (PSIS, ChEES, NUTS) that no
    # earlier dataset took, which compiles that step once (about a dozen programs for
    # ChEES with NUTS here); a compilation per run or per dataset, the failure that crashed
    # a benchmark, would cost that on every run: 6 runs x 3 datasets
    later = [_compiles(lambda s=s: run(s)) for s in range(2, 8)]
    assert sum(later) <= 30, later
    # and the same datasets again compile nothing at all
    assert _compiles(lambda: [run(s) for s in range(2, 8)]) == 0
