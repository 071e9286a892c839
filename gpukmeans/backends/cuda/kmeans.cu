// gpukmeans CUDA kernels for the k-means backend (gpukmeans/backends/cuda/__init__.py).
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
//     reduced in a fixed order: per block here, over blocks by the caller (sum_rows_kernel, or a
//     CuPy sum, over the fixed (n_blocks, n_slots) array). The grid depends only on n, the kernel's
//     shared memory and registers and the device, so the same input gives bit-identical results
//     run after run on one device;
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

// The accumulator after the first coordinate: term(0, diff), which equals the term itself exactly (it is
// never negative), without the addition of zero that the compiler must otherwise keep.
template <int METRIC, typename T>
__device__ __forceinline__ T first_term(T diff) {
    if (METRIC == 0) return diff * diff;
    return absolute(diff);
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
    T acc = first_term<METRIC>(x[0] - c[0]);  // d >= 1
    if (D > 0) {
#pragma unroll
        for (int f = 1; f < (D > 0 ? D : 1); ++f) acc = term<METRIC>(acc, x[f] - c[f]);
    } else {
        for (int f = 1; f < d; ++f) acc = term<METRIC>(acc, x[f] - c[f]);
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
//   grouped 1: each thread takes UNROLL consecutive samples per trip, read with 16-byte vector loads
//       (D > 0; X and labels 16-byte aligned); 0: UNROLL samples a grid stride apart
//   OUT block_out (gridDim.x, 2 + n_slots), per block: the weighted objective, the number of changed
//       labels, then if accumulate (n_slots = k * (d + 1), else 0) the per-cluster weighted
//       coordinate sums and, in the last of each cluster's d + 1 slots, the cluster weight (one
//       array, so that the caller reduces and copies it in one go)
//   IN gate (1): the kernel does nothing when *gate == 0 (a look-ahead assignment, see means_kernel;
//       every other launch passes a 1)
// Shared memory: red (blockDim.x doubles), slots (blockDim.x * (n_slots | 1) doubles if
// accumulate), centers (k * d T) if centers_in_shared.
// Each thread loads the UNROLL samples of its next trip before it measures those of the current one
// (the loads overlap the arithmetic), and runs the centers in the outer loop: one read of a center's
// coordinates serves UNROLL samples (register blocking). With at most SMALL_K centers of few
// coordinates (Small<T, D>), the centers are held in registers for the whole kernel, and the loop is
// compiled once per case of (weighted, accumulate), so that no sample tests them.
namespace gk {

static_assert(UNROLL == 4, "a trip's labels are read as one int4");

constexpr int SMALL_K = 8;  // centers held in registers: up to this many,

template <typename T, int D>
struct Small {  // of up to 12 bytes each (float pixels: d <= 3)
    static constexpr bool value = D > 0 && D * sizeof(T) <= 12;
};

// The UNROLL samples of a trip and their previous labels: `first`, then `first + u * inner` (grouped:
// inner = 1, read as 16-byte vectors when the whole trip is in X). A sample past the end reads as a copy
// of sample `first` (< n), ignored by the caller.
template <typename T, int D>
__device__ __forceinline__ void load_trip(const T* __restrict__ X, const int* __restrict__ labels, long long n,
                                          int d, long long first, long long inner, int grouped,
                                          Row<T, D> (&x)[UNROLL], int (&old)[UNROLL]) {
    if constexpr (D > 0) {
        if (grouped && first + UNROLL <= n) {
            constexpr int NV = UNROLL * D * (int)sizeof(T) / 16;  // UNROLL rows: a multiple of 16 bytes
            union {
                int4 q[NV];
                T v[UNROLL * D];
            } rows;
            const int4* src = reinterpret_cast<const int4*>(X + first * D);
#pragma unroll
            for (int q = 0; q < NV; ++q) rows.q[q] = src[q];
            const int4 lab = *reinterpret_cast<const int4*>(labels + first);
#pragma unroll
            for (int u = 0; u < UNROLL; ++u)
#pragma unroll
                for (int f = 0; f < D; ++f) x[u].v[f] = rows.v[u * D + f];
            old[0] = lab.x;
            old[1] = lab.y;
            old[2] = lab.z;
            old[3] = lab.w;
            return;
        }
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
        const long long i = first + u * inner;
        x[u].load(X, i < n ? i : first, d);
        old[u] = i < n ? labels[i] : 0;
    }
}

// Fold center j (coordinates c: registers, shared or global memory) into the running nearest center of
// each sample of the trip.
template <typename T, int METRIC, int D>
__device__ __forceinline__ void try_center(const Row<T, D> (&x)[UNROLL], const T* c, int j, int d,
                                           T (&best)[UNROLL], int (&best_j)[UNROLL]) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
        const T acc = distance<METRIC, D>(x[u], c, d);
        if (acc < best[u]) {
            best[u] = acc;
            best_j[u] = j;
        }
    }
}

// The centers as the nearest-center search reads them: registers (SMALL: k <= SMALL_K, every center
// loaded once per thread) or a pointer to shared or global memory.
template <typename T, int D, bool SMALL>
struct Centers {
    const T* p;
    __device__ __forceinline__ Centers(const T* C, int, int) : p(C) {}
};

template <typename T, int D>
struct Centers<T, D, true> {
    T c[SMALL_K][D];
    __device__ __forceinline__ Centers(const T* C, int d, int k) {
#pragma unroll
        for (int j = 0; j < SMALL_K; ++j)
#pragma unroll
            for (int f = 0; f < D; ++f) c[j][f] = j < k ? C[j * D + f] : T(0);
    }
};

template <typename T, int METRIC, int D, bool SMALL>
__device__ __forceinline__ void nearest(const Row<T, D> (&x)[UNROLL], const Centers<T, D, SMALL>& C, int d, int k,
                                        T (&best)[UNROLL], int (&best_j)[UNROLL]) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
        best[u] = inf_value<T>();
        best_j[u] = 0;
    }
    if constexpr (SMALL) {
#pragma unroll
        for (int j = 0; j < SMALL_K; ++j)
            if (j < k) try_center<T, METRIC, D>(x, C.c[j], j, d, best, best_j);
    } else if constexpr (D > 0) {
        for (int j = 0; j < k; ++j) {
            T c[D];
#pragma unroll
            for (int f = 0; f < D; ++f) c[f] = C.p[j * D + f];
            try_center<T, METRIC, D>(x, c, j, d, best, best_j);
        }
    } else {
        for (int j = 0; j < k; ++j) try_center<T, METRIC, D>(x, C.p + j * d, j, d, best, best_j);
    }
}

// The sample loop of assign; adds to objective and changed. W and A: whether the samples are weighted
// and their sums accumulated, 0 or 1, or 2 to read it from has_weight and accumulate at each sample.
template <typename T, int METRIC, int D, bool SMALL, int W, int A>
__device__ __forceinline__ void assign_samples(const T* __restrict__ X, const T* __restrict__ sample_weight,
                                               int has_weight, const Centers<T, D, SMALL>& C, long long n, int d,
                                               int k, int* __restrict__ labels, int accumulate, int grouped,
                                               double* my, double& objective, unsigned int& changed) {
    const bool WEIGHTED = W == 2 ? has_weight != 0 : W == 1;
    const bool ACCUMULATE = A == 2 ? accumulate != 0 : A == 1;
    const long long step = (long long)gridDim.x * blockDim.x;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long inner = grouped ? 1 : step;  // between the samples of one trip
    long long first = grouped ? UNROLL * tid : tid;
    // small rows: the next trip is read before this one is measured (wide rows would double the registers)
    constexpr bool PREFETCH = D > 0 && D * sizeof(T) <= 16;
    Row<T, D> x[UNROLL];
    int old[UNROLL];
    if (PREFETCH && first < n) load_trip<T, D>(X, labels, n, d, first, inner, grouped, x, old);
    for (; first < n; first += UNROLL * step) {
        Row<T, D> x_next[UNROLL];
        int old_next[UNROLL];
        const long long next = first + UNROLL * step;
        if (!PREFETCH)
            load_trip<T, D>(X, labels, n, d, first, inner, grouped, x, old);
        else if (next < n)
            load_trip<T, D>(X, labels, n, d, next, inner, grouped, x_next, old_next);
        T best[UNROLL];
        int best_j[UNROLL];
        nearest<T, METRIC, D, SMALL>(x, C, d, k, best, best_j);
        const bool whole = first + (UNROLL - 1) * inner < n;  // every sample of the trip is in X
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long i = first + u * inner;
            if (whole || i < n) {
                const int j = best_j[u];
                const double wi = WEIGHTED ? (double)sample_weight[i] : 1.0;
                objective += WEIGHTED ? wi * (double)best[u] : (double)best[u];
                if (old[u] != j) {
                    ++changed;
                    labels[i] = j;
                }
                if (ACCUMULATE) add_row(my + j * (d + 1), x[u], wi, d, WEIGHTED);
            }
        }
        if (PREFETCH) {
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                x[u] = x_next[u];
                old[u] = old_next[u];
            }
        }
    }
}

// The sample loop compiled once per case of (weighted, accumulate) where the centers are in registers (no
// sample tests them); otherwise once, testing them (fewer registers: more resident blocks).
template <typename T, int METRIC, int D, bool SMALL>
__device__ __forceinline__ void assign_cases(const T* __restrict__ X, const T* __restrict__ sample_weight,
                                             int has_weight, const T* __restrict__ C, long long n, int d, int k,
                                             int* __restrict__ labels, int accumulate, int grouped, double* my,
                                             double& objective, unsigned int& changed) {
    const Centers<T, D, SMALL> c(C, d, k);
#define GK_ASSIGN_SAMPLES(W, A)                                                                                \
    assign_samples<T, METRIC, D, SMALL, W, A>(X, sample_weight, has_weight, c, n, d, k, labels, accumulate, grouped, \
                                              my, objective, changed)
    if (!SMALL)
        GK_ASSIGN_SAMPLES(2, 2);
    else if (has_weight)
        accumulate ? GK_ASSIGN_SAMPLES(1, 1) : GK_ASSIGN_SAMPLES(1, 0);
    else
        accumulate ? GK_ASSIGN_SAMPLES(0, 1) : GK_ASSIGN_SAMPLES(0, 0);
#undef GK_ASSIGN_SAMPLES
}

}  // namespace gk

template <typename T, int METRIC, int D>
__global__ void assign_kernel(const T* __restrict__ X, const T* __restrict__ sample_weight, int has_weight,
                              const T* __restrict__ centers, long long n, int d, int k,
                              int* __restrict__ labels, int accumulate, int centers_in_shared, int grouped,
                              double* __restrict__ block_out, const double* __restrict__ gate) {
    if (*gate == 0.0) return;  // a look-ahead assignment known to repeat the one before (see means_kernel)
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
    const T* C = centers_in_shared ? c_sh : centers;

    double objective = 0.0;
    unsigned int changed = 0;  // a thread's samples: far fewer than 2^32 (a wave of blocks covers the GPU)
    if (gk::Small<T, D>::value && k <= gk::SMALL_K)
        gk::assign_cases<T, METRIC, D, gk::Small<T, D>::value>(X, sample_weight, has_weight, C, n, d, k, labels,
                                                                accumulate, grouped, my, objective, changed);
    else
        gk::assign_cases<T, METRIC, D, false>(X, sample_weight, has_weight, C, n, d, k, labels, accumulate, grouped,
                                              my, objective, changed);
    double* out = block_out + (long long)blockIdx.x * (2 + n_slots);
    objective = gk::block_sum(objective, red);
    const double n_changed = gk::block_sum((double)changed, red);
    if (threadIdx.x == 0) {
        out[0] = objective;
        out[1] = n_changed;
    }
    if (accumulate) gk::reduce_slots(slots, n_slots, stride, out + 2);
}

// ---------------------------------------------------------------------------------------------
// sum_rows: out[s] = the sum over r of rows[r, s] (n_rows, width), one warp per column: lane l adds
// rows l, l + 32, ... in order, then the lanes are added in a fixed tree. The order depends on n_rows
// only, so the same rows give the same bits. Launched with blocks of whole warps. Nothing is done when
// *gate == 0 (as in assign_kernel).
__global__ void sum_rows_kernel(const double* __restrict__ rows, int n_rows, int width,
                                double* __restrict__ out, const double* __restrict__ gate) {
    if (*gate == 0.0) return;
    const int s = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (s >= width) return;  // whole warps: the shuffles below see all 32 lanes
    double acc = 0.0;
    for (int r = lane; r < n_rows; r += 32) acc += rows[(long long)r * width + s];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) out[s] = acc;
}

// ---------------------------------------------------------------------------------------------
// means: the mean update of one assignment's sums, computed on the device so that the next assignment
// can be queued before the host has the sums (CUDABackend.assign_ahead). As the driver computes it
// (gpukmeans._driver._means), bit for bit: a cluster of positive weight moves to its weighted mean
// (float64 division, rounded to T), the others keep their center.
//   IN centers (k, d); res (2 + k * (d + 1) + k * d): the objective, the labels changed and the
//      (k, d + 1) sums of the assignment to centers (sum_rows_kernel's output)
//   OUT next (k, d) the updated centers; the last k * d values of res: the same, as double (copied to
//      the host with the sums, where the driver's own update is checked against them)
// Nothing is done when *gate == 0. The look-ahead assignment to next is gated on the labels changed
// by the assignment before it (res[1] of the previous group): when none changed and these centers were
// themselves the mean update of the sums before, the sums, the update and the labels would all repeat.
template <typename T>
__global__ void means_kernel(double* __restrict__ res, const T* __restrict__ centers, int k, int d,
                             T* __restrict__ next, const double* __restrict__ gate) {
    if (*gate == 0.0) return;
    const double* sums = res + 2;
    double* out = res + 2 + k * (d + 1);
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < k * d; e += gridDim.x * blockDim.x) {
        const int j = e / d;
        const double w = sums[j * (d + 1) + d];
        const T c = w > 0.0 ? (T)(sums[j * (d + 1) + (e - j * d)] / w) : centers[e];
        next[e] = c;
        out[e] = (double)c;
    }
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
