// gpukmeans CUDA kernels for the k-means backend (gpukmeans/backends/cuda.py).
//
// One templated kernel per operation:
//   T       float or double, the dtype of X, centers and sample_weight;
//   METRIC  0 euclidean (squared distance), 1 manhattan, 2 chebyshev (gpukmeans.metrics codes);
//   D       the number of features when it is small (1..8: the point is held in registers),
//           0 for any width (the point is read through the L1 cache).
//
// Conventions, shared with the numba CPU kernels so that both backends give the same answer:
//   * X is C-contiguous (n, d); labels are int32; ties in distance go to the lowest center index;
//   * distances are computed in T, feature by feature in order, without fused multiply-adds
//     (the module is compiled with --fmad=false), so they are bit-identical to the CPU's;
//   * every sum over samples is accumulated in double, in per-thread slots (no atomics), then
//     reduced in a fixed order: per block here, over blocks by the caller (a CuPy sum over the
//     fixed (n_blocks, n_slots) array). The grid depends only on n, the kernel's shared memory and
//     the device, so the same input gives bit-identical results run after run on one device;
//   * sample_weight may be skipped (has_weight = 0) when every weight is 1.
//
// Per-thread slots live in dynamic shared memory laid out [thread][slot] with an odd stride
// (slot_stride = n_slots | 1) so that a warp's scattered updates spread over the banks.
// Kernels that accumulate per cluster take a cluster range [j0, j1): the caller splits k into
// ranges whose slots fit in shared memory, and samples outside the range are skipped.
//
// The histogram kernel (weighted median of integer-valued data) uses atomic adds of 64-bit integer
// counts: it is only called with integer-valued weights, whose sums are exact in any order.

namespace gk {

template <typename T> __device__ __forceinline__ T inf_value();
template <> __device__ __forceinline__ float inf_value<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double inf_value<double>() { return __longlong_as_double(0x7ff0000000000000LL); }

__device__ __forceinline__ float absolute(float v) { return fabsf(v); }
__device__ __forceinline__ double absolute(double v) { return fabs(v); }
__device__ __forceinline__ float maximum(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double maximum(double a, double b) { return fmax(a, b); }

// Fold one coordinate difference into a distance accumulator (no NaN here: X was checked).
template <int METRIC, typename T>
__device__ __forceinline__ T term(T acc, T diff) {
    if (METRIC == 0) return acc + diff * diff;
    if (METRIC == 1) return acc + absolute(diff);
    return maximum(acc, absolute(diff));
}

// One sample's coordinates: in registers when D > 0, a pointer into X when D == 0.
template <typename T, int D>
struct Row {
    T v[D];
    __device__ __forceinline__ void load(const T* __restrict__ X, long long i, int) {
#pragma unroll
        for (int f = 0; f < D; ++f) v[f] = X[i * D + f];
    }
    __device__ __forceinline__ T operator[](int f) const { return v[f]; }
};

template <typename T>
struct Row<T, 0> {
    const T* p;
    __device__ __forceinline__ void load(const T* __restrict__ X, long long i, int d) { p = X + i * d; }
    __device__ __forceinline__ T operator[](int f) const { return p[f]; }
};

// Objective term between a sample and one center (squared distance for euclidean).
template <int METRIC, int D, typename T>
__device__ __forceinline__ T distance(const Row<T, D>& x, const T* __restrict__ c, int d) {
    T acc = T(0);
    if (D > 0) {
#pragma unroll
        for (int f = 0; f < (D > 0 ? D : 1); ++f) acc = term<METRIC>(acc, x[f] - c[f]);
    } else {
        for (int f = 0; f < d; ++f) acc = term<METRIC>(acc, x[f] - c[f]);
    }
    return acc;
}

// Sum thread slots over the block, slot by slot in thread order; write row `out` (n_slots).
__device__ __forceinline__ void reduce_slots(const double* slots, int n_slots, int stride, double* __restrict__ out) {
    __syncthreads();
    for (int s = threadIdx.x; s < n_slots; s += blockDim.x) {
        double acc = 0.0;
        for (int t = 0; t < blockDim.x; ++t) acc += slots[t * stride + s];
        out[s] = acc;
    }
}

// Fixed-order tree sum of one double per thread (blockDim.x a power of two); result in red[0].
__device__ __forceinline__ double block_sum(double value, double* red) {
    __syncthreads();
    red[threadIdx.x] = value;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    double r = red[0];
    __syncthreads();
    return r;
}

// s[f] += w * x[f] for every feature, then s[d] += w (one cluster's d + 1 slots).
// With unit weights (has_weight == 0) the products are skipped: w * x == x exactly.
template <int D, typename T>
__device__ __forceinline__ void add_row(double* s, const Row<T, D>& x, double w, int d, int has_weight) {
    if (D > 0) {
        if (has_weight) {
#pragma unroll
            for (int f = 0; f < (D > 0 ? D : 1); ++f) s[f] += w * (double)x[f];
        } else {
#pragma unroll
            for (int f = 0; f < (D > 0 ? D : 1); ++f) s[f] += (double)x[f];
        }
        s[D > 0 ? D : 0] += w;
    } else {
        if (has_weight) {
            for (int f = 0; f < d; ++f) s[f] += w * (double)x[f];
        } else {
            for (int f = 0; f < d; ++f) s[f] += (double)x[f];
        }
        s[d] += w;
    }
}

__device__ __forceinline__ void zero(double* a, int count) {
    for (int e = threadIdx.x; e < count; e += blockDim.x) a[e] = 0.0;
}

constexpr int UNROLL = 4;  // samples in flight per thread and loop trip

}  // namespace gk

// ---------------------------------------------------------------------------------------------
// assign: labels[i] = argmin_j term(X[i], centers[j]) (lowest j on ties), one pass over X.
//   IN  X (n, d), sample_weight (n) [read only if has_weight], centers (k, d)
//   INOUT labels (n) int32: previous labels in, nearest centers out (written only where they change)
//   OUT block_out (gridDim.x, 2 + n_slots), per block: the weighted objective, the number of changed
//       labels, then if accumulate (n_slots = k * (d + 1), else 0) the per-cluster weighted
//       coordinate sums and, in the last of each cluster's d + 1 slots, the cluster weight
//       (one array, so that the caller reduces and copies it in one go)
// Shared memory: red (blockDim.x doubles), slots (blockDim.x * (n_slots | 1) doubles if
// accumulate), centers (k * d T) if centers_in_shared.
// Each thread takes UNROLL samples per trip (grid-stride), loads them first, then runs the centers
// in the outer loop: one read of a center's coordinates serves UNROLL samples (register blocking).
namespace gk {

template <typename T, int METRIC, int D>
__device__ __forceinline__ void nearest(const Row<T, D> (&x)[UNROLL], const T* __restrict__ C, int d, int k,
                                        T (&best)[UNROLL], int (&best_j)[UNROLL]) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
        best[u] = inf_value<T>();
        best_j[u] = 0;
    }
    if (D > 0) {
        constexpr int DD = D > 0 ? D : 1;
        for (int j = 0; j < k; ++j) {
            T c[DD];
#pragma unroll
            for (int f = 0; f < DD; ++f) c[f] = C[j * DD + f];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                T acc = T(0);
#pragma unroll
                for (int f = 0; f < DD; ++f) acc = term<METRIC>(acc, x[u][f] - c[f]);
                if (acc < best[u]) {
                    best[u] = acc;
                    best_j[u] = j;
                }
            }
        }
    } else {
        for (int j = 0; j < k; ++j) {
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                T acc = distance<METRIC, D>(x[u], C + j * d, d);
                if (acc < best[u]) {
                    best[u] = acc;
                    best_j[u] = j;
                }
            }
        }
    }
}

}  // namespace gk

template <typename T, int METRIC, int D>
__global__ void assign_kernel(const T* __restrict__ X, const T* __restrict__ sample_weight, int has_weight,
                              const T* __restrict__ centers, long long n, int d, int k,
                              int* __restrict__ labels, int accumulate, int centers_in_shared,
                              double* __restrict__ block_out) {
    extern __shared__ double smem[];
    double* red = smem;
    double* slots = red + blockDim.x;
    const int n_slots = accumulate ? k * (d + 1) : 0;
    const int stride = n_slots | 1;
    T* c_sh = reinterpret_cast<T*>(slots + (accumulate ? blockDim.x * stride : 0));
    if (centers_in_shared)
        for (int e = threadIdx.x; e < k * d; e += blockDim.x) c_sh[e] = centers[e];
    if (accumulate) gk::zero(slots, blockDim.x * stride);
    __syncthreads();
    double* my = slots + threadIdx.x * stride;

    double objective = 0.0;
    double changed = 0.0;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long base = (long long)blockIdx.x * blockDim.x + threadIdx.x; base < n; base += gk::UNROLL * step) {
        gk::Row<T, D> x[gk::UNROLL];
        int old[gk::UNROLL];
#pragma unroll
        for (int u = 0; u < gk::UNROLL; ++u) {
            const long long i = base + u * step;
            x[u].load(X, i < n ? i : base, d);  // past the end: a copy of the first sample, ignored below
            old[u] = i < n ? labels[i] : 0;
        }
        T best[gk::UNROLL];
        int best_j[gk::UNROLL];
        if (centers_in_shared)
            gk::nearest<T, METRIC, D>(x, c_sh, d, k, best, best_j);
        else
            gk::nearest<T, METRIC, D>(x, centers, d, k, best, best_j);
#pragma unroll
        for (int u = 0; u < gk::UNROLL; ++u) {
            const long long i = base + u * step;
            if (i < n) {
                const double wi = has_weight ? (double)sample_weight[i] : 1.0;
                objective += wi * (double)best[u];
                if (old[u] != best_j[u]) {
                    changed += 1.0;
                    labels[i] = best_j[u];
                }
                if (accumulate) gk::add_row(my + best_j[u] * (d + 1), x[u], wi, d, has_weight);
            }
        }
    }
    double* out = block_out + (long long)blockIdx.x * (2 + n_slots);
    objective = gk::block_sum(objective, red);
    changed = gk::block_sum(changed, red);
    if (threadIdx.x == 0) {
        out[0] = objective;
        out[1] = changed;
    }
    if (accumulate) gk::reduce_slots(slots, n_slots, stride, out + 2);
}

// ---------------------------------------------------------------------------------------------
// The skeleton of the per-cluster accumulating kernels: each thread adds the samples it visits
// (grid-stride) that belong to clusters j0 <= j < j1 into its own n_slots float64 slots, with
// add(my_slots, j, x, w); the block then sums the slots in thread order into block_out (n_slots).
namespace gk {

template <typename T, int D, typename Add>
__device__ __forceinline__ void accumulate_by_cluster(const T* __restrict__ X, const T* __restrict__ sample_weight,
                                                      int has_weight, const int* __restrict__ labels, long long n,
                                                      int d, int j0, int j1, int n_slots, double* __restrict__ block_out,
                                                      Add add) {
    extern __shared__ double smem[];
    const int stride = n_slots | 1;
    double* slots = smem;
    zero(slots, blockDim.x * stride);
    __syncthreads();
    double* my = slots + threadIdx.x * stride;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const int j = labels[i];
        if (j < j0 || j >= j1) continue;
        Row<T, D> x;
        x.load(X, i, d);
        add(my, j, x, has_weight ? (double)sample_weight[i] : 1.0);
    }
    reduce_slots(slots, n_slots, stride, block_out + (long long)blockIdx.x * n_slots);
}

}  // namespace gk

// weighted_sums: per-cluster weighted coordinate sums and weights of clusters j0 <= j < j1.
//   OUT block_sums (gridDim.x, (j1 - j0) * (d + 1))
template <typename T, int D>
__global__ void sums_kernel(const T* __restrict__ X, const T* __restrict__ sample_weight, int has_weight,
                            const int* __restrict__ labels, long long n, int d, int j0, int j1,
                            double* __restrict__ block_sums) {
    auto add = [=](double* my, int j, const gk::Row<T, D>& x, double w) {
        gk::add_row(my + (j - j0) * (d + 1), x, w, d, has_weight);
    };
    gk::accumulate_by_cluster<T, D>(X, sample_weight, has_weight, labels, n, d, j0, j1, (j1 - j0) * (d + 1),
                                    block_sums, add);
}

// cluster_objectives: per candidate set s and cluster j0 <= j < j1, the weighted objective of
// candidates[s, j] over the samples labelled j.
//   IN candidates (n_sets, k, d)
//   OUT block_obj (gridDim.x, n_sets * (j1 - j0)), slot s * (j1 - j0) + (j - j0)
template <typename T, int METRIC, int D>
__global__ void objectives_kernel(const T* __restrict__ X, const T* __restrict__ sample_weight, int has_weight,
                                  const int* __restrict__ labels, const T* __restrict__ candidates, long long n,
                                  int d, int k, int n_sets, int j0, int j1, double* __restrict__ block_obj) {
    const int width = j1 - j0;
    auto add = [=](double* my, int j, const gk::Row<T, D>& x, double w) {
        for (int s = 0; s < n_sets; ++s) {
            const T dist = gk::distance<METRIC, D>(x, candidates + ((long long)s * k + j) * d, d);
            my[s * width + (j - j0)] += w * (double)dist;
        }
    };
    gk::accumulate_by_cluster<T, D>(X, sample_weight, has_weight, labels, n, d, j0, j1, n_sets * width, block_obj,
                                    add);
}

// ---------------------------------------------------------------------------------------------
// pairwise: out[i, j] = term(X[i], centers[j]) for every sample and center, in T.
template <typename T, int METRIC, int D>
__global__ void pairwise_kernel(const T* __restrict__ X, const T* __restrict__ centers, long long n, int d, int k,
                                T* __restrict__ out) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        gk::Row<T, D> x;
        x.load(X, i, d);
        for (int j = 0; j < k; ++j) out[i * k + j] = gk::distance<METRIC, D>(x, centers + j * d, d);
    }
}

// point_costs: out[i] = term(X[i], centers[labels[i]]), in T.
template <typename T, int METRIC, int D>
__global__ void point_costs_kernel(const T* __restrict__ X, const T* __restrict__ centers,
                                   const int* __restrict__ labels, long long n, int d, T* __restrict__ out) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        gk::Row<T, D> x;
        x.load(X, i, d);
        out[i] = gk::distance<METRIC, D>(x, centers + (long long)labels[i] * d, d);
    }
}

// ---------------------------------------------------------------------------------------------
// histogram: hist[j, f, b] += w_i for every sample i of cluster j with X[i, f] == lo + b.
// X must hold integers in [lo, lo + n_bins) and the weights must be non-negative integers: counts
// are 64-bit integers (exact, so the order of the atomic adds does not matter).
//   INOUT hist (k, d, n_bins) uint64, zeroed by the caller.
// With use_shared, each block first counts into shared memory (k * d * n_bins uint64).
namespace gk {

template <typename T>
__device__ __forceinline__ void count_samples(const T* __restrict__ X, const T* __restrict__ sample_weight,
                                              int has_weight, const int* __restrict__ labels, long long n, int d,
                                              double lo, int n_bins, unsigned long long* h) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const unsigned long long wi = has_weight ? (unsigned long long)sample_weight[i] : 1ULL;
        if (wi == 0ULL) continue;
        unsigned long long* row = h + (long long)labels[i] * d * n_bins;
        for (int f = 0; f < d; ++f) {
            const int b = (int)((double)X[i * d + f] - lo);
            atomicAdd(row + f * n_bins + b, wi);
        }
    }
}

}  // namespace gk

template <typename T>
__global__ void histogram_kernel(const T* __restrict__ X, const T* __restrict__ sample_weight, int has_weight,
                                 const int* __restrict__ labels, long long n, int d, int k, double lo, int n_bins,
                                 int use_shared, unsigned long long* __restrict__ hist) {
    extern __shared__ double smem[];
    if (!use_shared) {
        gk::count_samples(X, sample_weight, has_weight, labels, n, d, lo, n_bins, hist);
        return;
    }
    unsigned long long* sh = reinterpret_cast<unsigned long long*>(smem);
    const int cells = k * d * n_bins;
    for (int e = threadIdx.x; e < cells; e += blockDim.x) sh[e] = 0ULL;
    __syncthreads();
    gk::count_samples(X, sample_weight, has_weight, labels, n, d, lo, n_bins, sh);
    __syncthreads();
    for (int e = threadIdx.x; e < cells; e += blockDim.x)
        if (sh[e] != 0ULL) atomicAdd(hist + e, sh[e]);
}
