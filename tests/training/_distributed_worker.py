"""One process of a training run (tests/training/test_distributed.py).

Usage: python _distributed_worker.py NUM_PROCESSES PROCESS_ID PORT OUT_DIR. With more than
one process it joins the others through ``jax.distributed`` before anything runs on JAX.
Writes the trained network's parameters to OUT_DIR/params_<id>.npz and the history and a
sampling check to OUT_DIR/run_<id>.json.
"""

import json
import sys
from pathlib import Path


def main(num_processes: int, process_id: int, port: str, out: Path) -> None:
    import jax

    if num_processes > 1:
        jax.distributed.initialize(
            f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id
        )

    import equinox as eqx
    import numpy as np

    import amortized as bf

    rng = np.random.default_rng(0)
    theta = rng.normal(size=(512, 2)).astype(np.float32)
    x = (theta + 0.5 * rng.normal(size=(512, 2))).astype(np.float32)
    workflow = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=2, subnet_kwargs={"widths": [16]}),
        inference_variables=["theta"],
        inference_conditions=["x"],
    )
    history = workflow.fit_offline(
        {"theta": theta, "x": x},
        epochs=3,
        batch_size=64,
        seed=1,
        progress=False,
        validation_data={"theta": theta[:64], "x": x[:64]},
        checkpoint_dir=out / "checkpoints",
    )
    params = jax.tree.leaves(eqx.filter(workflow.approximator.nets, eqx.is_inexact_array))
    np.savez(out / f"params_{process_id}.npz", *[np.asarray(p) for p in params])
    draws = workflow.sample(conditions={"x": x[:2]}, num_samples=5, seed=0)
    odd = None
    try:
        workflow.fit_offline({"theta": theta, "x": x}, epochs=1, batch_size=63, progress=False)
    except ValueError as e:
        odd = str(e)
    run = {
        "process_count": jax.process_count(),
        "devices": history["devices"],
        "loss": history["loss"],
        "draws_shape": list(draws["theta"].shape),
        "odd_batch_error": odd,
    }
    (out / f"run_{process_id}.json").write_text(json.dumps(run))


if __name__ == "__main__":
    n, i, port, out = sys.argv[1:5]
    main(int(n), int(i), port, Path(out))
