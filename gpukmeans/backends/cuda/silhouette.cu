// gpukmeans CUDA kernel for the exact silhouette (gpukmeans/silhouette.py, engine "cuda").
//
// For each query u (one thread each) and each cluster j, the weighted sum of distances
//     S[u, j] = sum_{v in cluster j} w[v] * d(Xq[u], Y[v])     (true distance, sqrt for euclidean)
// reduced straight into the two numbers the silhouette needs: own[u] = S[u, q_labels[u]] and
// nearest[u] = min over other clusters j of positive weight of S[u, j] / cluster_w[j].
// Never an n x n matrix: the points Y (sorted by cluster, cluster j in offsets[j] .. offsets[j+1])
// stream through shared memory in tiles that every thread of the block reads.
// All arithmetic in double; each thread sums its points in index order (deterministic).
//   METRIC 0 euclidean, 1 manhattan, 2 chebyshev; D the number of features (1..8) or 0 (any).
// Shared memory: TILE * (d + 1) doubles (coordinates, then weights).

namespace gks {

constexpr int TILE = 256;

template <int METRIC>
__device__ __forceinline__ double term(double acc, double diff) {
    if (METRIC == 0) return acc + diff * diff;
    double a = fabs(diff);
    if (METRIC == 1) return acc + a;
    return acc < a ? a : acc;
}

}  // namespace gks

template <int METRIC, int D>
__global__ void silhouette_sums_kernel(const double* __restrict__ Xq, const long long* __restrict__ q_labels,
                                       long long n_queries, const double* __restrict__ Y,
                                       const double* __restrict__ w, const long long* __restrict__ offsets, int k,
                                       const double* __restrict__ cluster_w, int d, double* __restrict__ own,
                                       double* __restrict__ nearest) {
    extern __shared__ double tile[];
    double* tile_w = tile + gks::TILE * d;
    const long long u = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = u < n_queries;
    double xr[D > 0 ? D : 1];
    const double* xq = Xq + (active ? u : 0) * d;
    if (D > 0) {
#pragma unroll
        for (int f = 0; f < (D > 0 ? D : 1); ++f) xr[f] = xq[f];
    }
    const long long label = active ? q_labels[u] : -1;
    double own_sum = 0.0;
    double best = __longlong_as_double(0x7ff0000000000000LL);  // +inf
    for (int j = 0; j < k; ++j) {
        const long long lo = offsets[j], hi = offsets[j + 1];
        double s = 0.0;
        for (long long t0 = lo; t0 < hi; t0 += gks::TILE) {
            const int m = (int)(hi - t0 < gks::TILE ? hi - t0 : gks::TILE);
            __syncthreads();
            for (int e = threadIdx.x; e < m * d; e += blockDim.x) tile[e] = Y[t0 * d + e];
            for (int e = threadIdx.x; e < m; e += blockDim.x) tile_w[e] = w[t0 + e];
            __syncthreads();
            for (int v = 0; v < m; ++v) {
                const double* y = tile + v * d;
                double acc = 0.0;
                if (D > 0) {
#pragma unroll
                    for (int f = 0; f < (D > 0 ? D : 1); ++f) acc = gks::term<METRIC>(acc, xr[f] - y[f]);
                } else {
                    for (int f = 0; f < d; ++f) acc = gks::term<METRIC>(acc, xq[f] - y[f]);
                }
                if (METRIC == 0) acc = sqrt(acc);
                s += tile_w[v] * acc;
            }
        }
        if (j == label) {
            own_sum = s;
        } else if (cluster_w[j] > 0.0) {
            const double mean = s / cluster_w[j];
            best = mean < best ? mean : best;
        }
    }
    if (active) {
        own[u] = own_sum;
        nearest[u] = best;
    }
}
