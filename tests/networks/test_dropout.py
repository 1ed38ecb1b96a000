import jax
import numpy as np

from amortized.networks.mlp import dropout_keep_mask


def test_hash_dropout_keeps_the_right_fraction_independently():
    # 100 keys x 4096 positions: the kept fraction has sd sqrt(.05 * .95 / 409600) = 3.4e-4,
    # so 0.002 is about 6 sd
    keys = jax.random.split(jax.random.key(0), 100)
    masks = np.asarray(jax.vmap(lambda k: dropout_keep_mask(k, 1, (4096,), 0.05))(keys))
    assert abs(masks.mean() - 0.95) < 0.002
    # masks of different keys and of different layers are not the same pattern: the
    # correlation between two independent Bernoulli vectors of length 4096 has sd 1/64
    c = np.corrcoef(masks.reshape(100, -1).astype(float))[np.triu_indices(100, 1)]
    assert np.abs(c).max() < 0.1
    other = np.asarray(dropout_keep_mask(keys[0], 2, (4096,), 0.05)).astype(float)
    assert abs(np.corrcoef(masks[0].astype(float), other)[0, 1]) < 0.1
    # deterministic given the key
    np.testing.assert_array_equal(
        masks[0], np.asarray(dropout_keep_mask(keys[0], 1, (4096,), 0.05))
    )


def test_hash_split_keys_give_independent_masks():
    # keys derived by split_dropout_key (per example, per layer, nested twice as in a
    # coupling flow's training step) seed masks as independent as threefry-split keys do:
    # same tolerances as above (correlation sd 1/64 for 4096 positions)
    from amortized.networks.mlp import split_dropout_key

    keys = split_dropout_key(jax.random.key(7), 50)
    nested = jax.vmap(lambda k: split_dropout_key(k, 2))(keys).reshape(-1)
    allkeys = jax.numpy.concatenate([keys, nested])
    data = np.asarray(jax.random.key_data(allkeys))
    assert len({tuple(r) for r in data}) == 150  # all distinct
    masks = np.asarray(jax.vmap(lambda k: dropout_keep_mask(k, 1, (4096,), 0.05))(allkeys))
    assert abs(masks.mean() - 0.95) < 0.003  # 150 x 4096 draws: sd 2.8e-4
    c = np.corrcoef(masks.astype(float))[np.triu_indices(150, 1)]
    assert np.abs(c).max() < 0.1
    again = np.asarray(jax.random.key_data(split_dropout_key(jax.random.key(7), 50)))
    np.testing.assert_array_equal(again, data[:50])
