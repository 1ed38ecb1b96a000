"""Training a model with context variables (a multiverse, a power-scaled prior) the two ways
their tests need: the library's defaults, for accuracy, and a small network briefly, for the
report, saving and the context signature."""

import amortized as bf


def train_defaults(model, sim_seed: int, fit_seed: int) -> bf.BasicWorkflow:
    """The library's defaults (network, early stopping) on 2 x 10^4 simulations, as the
    benchmarks train."""
    wf = bf.BasicWorkflow(simulator=model.simulator, adapter=model.default_adapter())
    wf.fit_offline(model.simulator.sample(20000, seed=sim_seed), seed=fit_seed, progress=False)
    return wf


def train_small(model, sim_seed: int, fit_seed: int) -> bf.BasicWorkflow:
    """A 2-layer flow of 32 x 32 subnets, 5 epochs on 2,000 simulations: fast, not accurate."""
    net = bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [32, 32]})
    wf = bf.BasicWorkflow(
        simulator=model.simulator, adapter=model.default_adapter(), inference_network=net
    )
    wf.fit_offline(
        model.simulator.sample(2000, seed=sim_seed),
        epochs=5,
        batch_size=64,
        seed=fit_seed,
        progress=False,
        early_stopping=False,
    )
    return wf
