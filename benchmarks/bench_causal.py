"""Speed of the causal-discovery core on synthetic softmax attention.

Prints, for 10, 30 and 51 nodes and for causal (SASRec-like, lower-triangular) and
bidirectional (BERT4Rec-like) attention: time per matrix, CI tests run and matrices per second
for ICD, order-aware ICD and FCI (FCI with conditioning sets bounded by 3, because its
Possible-D-Sep phase is exponential on dense bidirectional graphs).

Optional: set ``RECAUSAL_REFERENCE`` to a checkout of IntelLabs/causality-lab (kept outside
this repository) to also time the reference ICD (partial-correlation test, 64 samples,
alpha 0.01, no selection bias) on the same matrices and report PAG agreement and speed ratio.

    python benchmarks/bench_causal.py [--matrices 20] [--ref-matrices 5] [--nodes 10 30 51]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from recausal.causal.citest import correlation_from_attention
from recausal.causal.learn import learn_pags
from recausal.testing.attention import random_softmax_attention

N_SAMPLES = 64
ALPHA = 0.01


def _reference_icd():
    path = os.environ.get("RECAUSAL_REFERENCE")
    if not path:
        return None
    sys.path.insert(0, path)
    from causal_discovery_algs import LearnStructICD  # type: ignore[import-not-found]
    from causal_discovery_utils.cond_indep_tests import (  # type: ignore[import-not-found]
        CondIndepParCorr,
    )

    def run(corr: np.ndarray) -> tuple[np.ndarray, int]:
        n = corr.shape[0]
        ci = CondIndepParCorr(
            threshold=ALPHA, dataset=None, num_records=N_SAMPLES, num_vars=n, count_tests=True
        )
        ci.correlation_matrix = corr
        alg = LearnStructICD(set(range(n)), ci, is_selection_bias=False)
        alg.learn_structure()
        return alg.graph.get_adj_mat(), int(sum(ci.test_counter))

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matrices", type=int, default=20)
    p.add_argument("--ref-matrices", type=int, default=5)
    p.add_argument("--nodes", type=int, nargs="+", default=[10, 30, 51])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ref = _reference_icd()

    configs = [
        ("ICD", {"algorithm": "icd"}),
        ("ICD order-aware", {"algorithm": "icd", "order_aware": True}),
        ("FCI (r<=3)", {"algorithm": "fci", "max_cond_size": 3}),
    ]
    print(
        f"{'nodes':>5} {'attention':<13} {'algorithm':<16} {'ms/matrix':>10} "
        f"{'tests':>8} {'matrices/s':>11}"
    )
    ref_rows = []
    for n in args.nodes:
        for kind, causal in (("causal", True), ("bidirectional", False)):
            attn = random_softmax_attention(n, causal=causal, seed=args.seed, batch=args.matrices)
            for label, kw in configs:
                learn_pags(attn[:1], n_samples=N_SAMPLES, alpha=ALPHA, **kw)  # warm-up
                t0 = time.perf_counter()
                res = learn_pags(attn, n_samples=N_SAMPLES, alpha=ALPHA, **kw)
                dt = (time.perf_counter() - t0) / len(attn)
                tests = np.mean([r.n_tests for r in res])
                print(
                    f"{n:>5} {kind:<13} {label:<16} {dt * 1e3:>10.2f} {tests:>8.0f} "
                    f"{1 / dt:>11.1f}",
                    flush=True,
                )
            if ref is not None:
                m = min(args.ref_matrices, len(attn))
                corr = correlation_from_attention(attn[:m])
                t0 = time.perf_counter()
                ours = learn_pags(attn[:m], n_samples=N_SAMPLES, alpha=ALPHA)
                t_ours = (time.perf_counter() - t0) / m
                t_ref, agree, ref_tests = 0.0, 0, []
                for k in range(m):
                    t0 = time.perf_counter()
                    marks, nt = ref(corr[k])
                    t_ref += time.perf_counter() - t0
                    ref_tests.append(nt)
                    agree += int(np.array_equal(marks, ours[k].marks))
                t_ref /= m
                ref_rows.append(
                    (
                        n,
                        kind,
                        m,
                        agree,
                        t_ref,
                        t_ours,
                        np.mean(ref_tests),
                        np.mean([r.n_tests for r in ours]),
                    )
                )
    if ref_rows:
        print("\nreference ICD (causality-lab) vs ours, same matrices")
        print(
            f"{'nodes':>5} {'attention':<13} {'identical PAGs':>15} {'ref ms':>9} "
            f"{'ours ms':>9} {'speed-up':>9} {'ref tests':>10} {'our tests':>10}"
        )
        for n, kind, m, agree, tr, to, rt, ot in ref_rows:
            print(
                f"{n:>5} {kind:<13} {f'{agree}/{m}':>15} {tr * 1e3:>9.1f} {to * 1e3:>9.2f} "
                f"{tr / to:>8.1f}x {rt:>10.0f} {ot:>10.0f}"
            )


if __name__ == "__main__":
    main()
