"""One process of a two-process run: the statistics core's results, saved as .npz.

Run as ``python _worker.py OUT.npz`` with the ALIGNJAX_* variables of a distributed run
(or without them: the single-process reference).
"""

import os
import sys

import numpy as np

import alignjax as aj
from alignjax import distributed


def problem():
    rng = np.random.default_rng(0)
    n = 36
    layers = [rng.standard_normal((n, 10)), rng.standard_normal((n, 14))]
    Y = layers[1] @ rng.standard_normal((14, 9)) + 2 * rng.standard_normal((n, 9))
    return layers, Y


def main(out):
    if os.environ.get(distributed.ENV_NUM_PROCESSES):
        distributed.initialize(timeout=60)
    # results travel in many small pieces with a remainder (the chunked gather)
    distributed.GATHER_PIECE_BYTES = 96
    layers, Y = problem()
    alphas = np.logspace(-1, 3, 5)
    res = {}

    def blocks(sl):  # 64-bit values that float32/int32 would change, and booleans
        idx = np.arange(13)[sl]
        return {"f": np.outer([1.0, 2.0, 3.0], idx) + 1e-12 * idx,
                "i": idx.astype(np.int64) * 2 ** 40, "b": idx % 3 == 0}

    g = distributed.map_blocks(blocks, 13)
    res.update(gather_f=g["f"], gather_i=g["i"], gather_b=g["b"])
    cv = aj.ridge_cv(layers[1], Y, alphas=alphas, folds=4)
    res.update(cv_alpha=cv.best_alpha, cv_coef=cv.coef, cv_scores=cv.cv_scores,
               cv_intercept=cv.intercept)
    own_cv = aj.ridge_cv(layers[1], Y, alphas=alphas, folds=4, gather=False)
    assert own_cv.coef.shape == (14, len(range(9)[distributed.block(9)]))
    res.update(cv_own_coef=distributed.gather_blocks(np.asarray(own_cv.coef), 9))
    enc = aj.encode(layers, Y, alphas=alphas, outer_folds=4, inner_folds=3)
    res.update(enc_r=enc.r, enc_pred=enc.prediction, enc_layer=enc.best_layer,
               enc_layer_r=enc.layer_fold_r)
    own = aj.encode(layers, Y, alphas=alphas, outer_folds=4, inner_folds=3, gather=False)
    assert own.r.shape == (len(range(9)[distributed.block(9)]),)  # this process's block
    res.update(enc_own_pred=distributed.gather_blocks(own.prediction, 9))
    rdms_a = np.stack([np.asarray(aj.rdm(X)) for X in layers])
    rdms_b = np.stack([np.asarray(aj.rdm(Y[:, :5])), np.asarray(aj.rdm(Y[:, 5:]))])
    rsa = aj.rsa_permutation_test(rdms_a, rdms_b, n_perm=301, seed=3, return_null=True)
    res.update(rsa_p=rsa.p, rsa_p_fwe=rsa.p_fwe, rsa_null=rsa.null)
    perm = aj.encoding_permutation_test(layers, Y, alphas=alphas, folds=4, n_perm=13, seed=1,
                                        encode_options={"inner_folds": 3})
    res.update(perm_p=perm.p, perm_p_fwe=perm.p_fwe, perm_q=perm.q)
    tested = aj.encode(layers, Y, alphas=alphas, outer_folds=4, inner_folds=3, seed=1)
    given = aj.encoding_permutation_test(layers, Y, alphas=alphas, folds=4, n_perm=13, seed=1,
                                         encode_options={"inner_folds": 3}, observed=tested.r)
    np.testing.assert_array_equal(given.p, perm.p)  # the unpermuted fit is not repeated
    np.testing.assert_array_equal(given.p_fwe, perm.p_fwe)
    np.savez(f"{out}.{distributed.process_index()}.npz",
             **{k: np.asarray(v) for k, v in res.items()})
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
