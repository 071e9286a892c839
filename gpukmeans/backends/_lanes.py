"""The terms of one sample against several candidate centers, in LLVM vector lanes.

The guarded update compares, cluster by cluster, the objective of three
candidate centers (see :func:`gpukmeans.backends._numba_kernels.cluster_objectives`).
Each sample is measured against the candidates of its own cluster, a row that
changes from one sample to the next, so LLVM's loop vectoriser leaves the loop
over samples scalar, and its SLP vectoriser does not pack the candidates of one
sample either (about 60 scalar instructions per sample at 3 features).
:func:`add_terms` writes that per-sample work as vector code itself: lane
``s`` holds candidate ``s``; each coordinate is broadcast, the candidates'
coordinates come in one load, and the weighted terms are added to four
float64 accumulators with one load and one store.

Measured on the 2-core Xeon dev VM (AVX-512), 1M x 3 float32, three candidate
sets: one thread, 5.0-5.5 ms scalar (the three sets side by side) and 2.2-2.4 ms
in lanes, for each metric; the whole parallel comparison on every sample, 3.4
ms (one set after another, the kernel before) -> 1.4 ms; 1M x 13: 11.6 -> 4.3 ms.

The results are the scalar code's, bit for bit: each lane does the same IEEE
operations in the same order as :func:`gpukmeans.backends._numba_kernels._term`
(no fused multiply-add, no reassociation; ``max`` as a compare and select,
which equals numba's ``max`` on the finite values the estimator admits).

numba's on-disk cache keys each kernel on the source file that defines it, not
on the files it calls into: after editing this module, clear the cache (or
touch ``_numba_kernels.py``), or the kernels keep their old code.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

#: Candidate sets per pass: the width of the vectors (the guarded update uses three; a fourth lane is free).
LANES = 4


def _splat(builder, value):
    """A vector of ``LANES`` copies of the scalar ``value``."""
    vector = ir.VectorType(value.type, LANES)
    first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    return builder.shuffle_vector(first, ir.Constant(vector, ir.Undefined), mask)


def _fold(builder, metric, acc, diff, fabs):
    """The lane-wise ``_term``: ``acc + diff**2``, ``acc + |diff|`` or ``max(acc, |diff|)``."""
    if metric == 0:
        return builder.fadd(acc, builder.fmul(diff, diff))
    magnitude = builder.call(fabs, [diff])
    if metric == 1:
        return builder.fadd(acc, magnitude)
    return builder.select(builder.fcmp_ordered(">", acc, magnitude), acc, magnitude)


def _check_types(X, lanes, out, dims):
    if not (isinstance(X, types.Array) and X.ndim == 2 and X.layout == "C" and isinstance(X.dtype, types.Float)):
        raise TypingError("add_terms: X must be a C-contiguous 2-D float array")
    if not (isinstance(lanes, types.Array) and lanes.ndim == 3 and lanes.layout == "C" and lanes.dtype == X.dtype):
        raise TypingError("add_terms: lanes must be a C-contiguous (n_clusters, n_features, LANES) array of X's dtype")
    if not (isinstance(out, types.Array) and out.ndim == 3 and out.layout == "C" and out.dtype == types.float64):
        raise TypingError("add_terms: out must be a C-contiguous (n_clusters, n_slots, LANES) float64 array")
    if not isinstance(dims, (types.UniTuple, types.Tuple)):
        raise TypingError("add_terms: dims must be a feature token (see feature_token)")


def _emit_add_terms(metric, context, builder, sig, args):
    """The code of :func:`add_terms` for one metric code (``sig``, ``args``: those of the intrinsic)."""
    x_value, i_value, weight_value, lanes_value, j_value, slot_value, out_value, _ = args
    x_type, i_type, weight_type, lanes_type, j_type, slot_type, out_type, dims_type = sig.args
    intp = context.get_value_type(types.intp)
    zero = ir.Constant(intp, 0)
    cluster = context.cast(builder, j_value, j_type, types.intp)
    vector = ir.VectorType(context.get_value_type(x_type.dtype), LANES)
    fabs_name = f"llvm.fabs.v{LANES}f{x_type.dtype.bitwidth}"
    fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector]), fabs_name)
    sample = context.cast(builder, i_value, i_type, types.intp)
    x_array, lanes_array, out_array = (
        context.make_array(t)(context, builder, v)
        for t, v in ((x_type, x_value), (lanes_type, lanes_value), (out_type, out_value))
    )
    row = cgutils.get_item_pointer(context, builder, x_type, x_array, [sample, zero])
    if len(dims_type):  # a constant trip count: LLVM unrolls the loop over features
        n_features = ir.Constant(intp, len(dims_type))
    else:
        n_features = cgutils.unpack_tuple(builder, x_array.shape)[1]
    acc = cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * LANES))  # promoted to a register
    with cgutils.for_range(builder, n_features) as loop:
        coordinate = builder.load(builder.gep(row, [loop.index]))
        centers = cgutils.get_item_pointer(context, builder, lanes_type, lanes_array, [cluster, loop.index, zero])
        candidates = builder.load(builder.bitcast(centers, vector.as_pointer()), align=x_type.dtype.bitwidth // 8)
        diff = builder.fsub(_splat(builder, coordinate), candidates)
        builder.store(_fold(builder, metric, builder.load(acc), diff, fabs), acc)
    wide = ir.VectorType(ir.DoubleType(), LANES)
    terms = builder.load(acc)
    if x_type.dtype != types.float64:
        terms = builder.fpext(terms, wide)
    weight = context.cast(builder, weight_value, weight_type, types.float64)
    terms = builder.fmul(_splat(builder, weight), terms)
    slot = context.cast(builder, slot_value, slot_type, types.intp)
    target = cgutils.get_item_pointer(context, builder, out_type, out_array, [cluster, slot, zero])
    target = builder.bitcast(target, wide.as_pointer())
    builder.store(builder.fadd(builder.load(target, align=8), terms), target, align=8)
    return context.get_dummy_value()


def _add_terms_intrinsic(metric: int):
    """The intrinsic of :func:`add_terms` for one metric code (a compile-time constant of its code)."""

    @intrinsic
    def add_terms_metric(typingctx, X, i, weight, lanes, j, slot, out, dims):
        _check_types(X, lanes, out, dims)

        def codegen(context, builder, sig, args):
            return _emit_add_terms(metric, context, builder, sig, args)

        return types.void(X, i, weight, lanes, j, slot, out, dims), codegen

    return add_terms_metric


_add_terms_0 = _add_terms_intrinsic(0)
_add_terms_1 = _add_terms_intrinsic(1)
_add_terms_2 = _add_terms_intrinsic(2)


@njit(inline="always")
def add_terms(metric, X, i, weight, lanes, j, slot, out, dims):
    """``out[j, slot, s] += weight * term(X[i], lanes[j, :, s])`` for every lane ``s < LANES``, at once.

    Parameters
    ----------
    metric : int
        0 euclidean (squared distance), 1 manhattan, 2 chebyshev.
    X : (n_samples, n_features) C-contiguous float32 or float64 array
    i : int
        The sample.
    weight : float64
    lanes : (n_clusters, n_features, LANES) C-contiguous array, dtype of X
        ``lanes[j, f, s]``: coordinate f of candidate s of cluster j.
    j : int
        The sample's cluster (``0 <= j < n_clusters``; not checked).
    slot : int
        The accumulator row (``0 <= slot < n_slots``).
    out : (n_clusters, n_slots, LANES) C-contiguous float64 array, INOUT
    dims : tuple
        Feature token (see ``feature_token``): its length, when not 0, is the
        number of features as a compile-time constant.
    """
    if metric == 0:  # loop-invariant in the caller's loop over samples: LLVM unswitches it
        _add_terms_0(X, i, weight, lanes, j, slot, out, dims)
    elif metric == 1:
        _add_terms_1(X, i, weight, lanes, j, slot, out, dims)
    else:
        _add_terms_2(X, i, weight, lanes, j, slot, out, dims)
