#pragma once
// terse_TopK.hpp: the top-k compressor. Selects the k coordinates of largest magnitude as (index, value)
// pairs, scatters them back and zeroes them, without sorting and without a temporary of the source.
//
// Used by the EF21 baseline of seed 004 (Sec. 5, Markov compression sequence w^_{t+1} = w^_t + C(w_{t+1} - w^_t),
// and Sec. 7.2, top-K with K = 0.016 d) and by error feedback (seed 004 Sec. 4: delta_t = p_t - C(p_t) with
// p_t = g_t + delta_{t-1}, which is top_k_zero on p_t). Top-k satisfies the biased-compressor contraction of
// seed 004 Assumption 4.1 with pi = k/d. On the wire an entry is 64 bits: a 32-bit index and an fp32 value.
//
// Definition: C(x) keeps the k largest |x_j| and zeroes the rest; ties in |x_j| go to the lower index.
// The magnitude order is that of the IEEE bit pattern with the sign bit cleared, so
//   * -0.0 and +0.0 tie (the lower index wins) and the selected value keeps its sign bit (-0.0 stays -0.0);
//   * NaN counts as larger than every number, +inf included (NaNs among themselves order by payload bits,
//     then by index); +-inf are larger than every finite number.
//
// Algorithm (expected O(n) work, no sort): a most-significant-digit radix select on the key
// |x| as bits (31 bits for fp32, 63 for fp64), 11 bits per digit (3 digits for fp32, 6 for fp64).
//   1. Histogram pass over the source: per-chunk histograms of the current digit of the keys that match the
//      prefix resolved so far (plus one slot counting keys above the prefix). Host backends: one thread per
//      chunk with a private histogram; device backends: one team per chunk with a team-scratch histogram
//      and scratch atomics. Column sums give the global histogram, which is copied to a host mirror held by
//      the workspace (2049 counters: a small device-to-host copy and a fence per pass) to pick the digit
//      of the threshold key.
//   2. As soon as the keys at or above the resolved prefix fit in the workspace's candidate buffer
//      (typically after the first pass: about k + 1..6 % of n for smooth data), they are compacted into it
//      in ascending index order (one more read of the source) and all further passes read only the buffer.
//      Otherwise (heavy ties, e.g. an all-equal vector) the passes keep reading the source.
//   3. Selection stops as soon as the whole bucket at the threshold is needed or the key is fully resolved.
//      The output is written by a chunked ordered compaction: the per-chunk histograms of the last pass give
//      each chunk's count above the threshold and equal to it, a scan over chunks (two 32-bit counts packed
//      in one std::uint64_t: above in the high half, equal in the low half) gives each chunk's output offset
//      and how many of its threshold-equal entries it takes, and each chunk writes its entries in index
//      order (a team scan with the same packed counts on device backends).
// For smooth data the source is read twice (one histogram pass, one compaction pass); the workspace reports
// the count of full reads of the source of the last call in source_passes().
//
// Memory: the workspace holds the outputs (k), the per-chunk histograms (ceil(n / chunk) x 2049 32-bit
// counters: 3 % of an fp32 source with the host chunks of 65536, 6 % with the device chunks of 32768), the
// candidate buffer (capacity entries of 32-bit index + value; default capacity min(n, k + max(n/8, 4096)),
// about 0.3 n floats for k = 0.016 n) and the host mirror of the global histogram (2049 counters).
// top_k_select allocates nothing; it copies the global histogram to the host mirror once per pass.

#include <terse_Compat.hpp>

#include "impl/terse_Checks.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace terse {

/// Tuning of a TopKWorkspace; the defaults suit every backend. Tests use them to reach every code path
/// with small vectors.
struct TopKOptions {
  /// Source elements per chunk (one thread or one team each); 0: 65536 on host backends, 32768 on devices.
  std::size_t chunk = 0;
  /// Entries of the candidate buffer; npos: min(n, k + max(n/8, 4096)); 0 disables compaction.
  std::size_t candidate_capacity = npos;
  /// Device backends always use the team kernels; host backends use one thread per chunk unless this is
  /// > 0, in which case they use the team kernels with teams of this size (to test the device code path).
  int host_team_size = 0;

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};

namespace Impl {

/// The magnitude key: the IEEE bit pattern with the sign bit cleared. For non-negative floats (and NaN
/// above +inf) the unsigned order of the pattern is the order of the value.
template <class T>
struct TopKKey;

template <>
struct TopKKey<float> {
  using type = std::uint32_t;
  static constexpr int bits = 31;
  KOKKOS_INLINE_FUNCTION static type of(float x) {
    type u;
    std::memcpy(&u, &x, sizeof(u));
    return u & 0x7fffffffu;
  }
};

template <>
struct TopKKey<double> {
  using type = std::uint64_t;
  static constexpr int bits = 63;
  KOKKOS_INLINE_FUNCTION static type of(double x) {
    type u;
    std::memcpy(&u, &x, sizeof(u));
    return u & 0x7fffffffffffffffull;
  }
};

inline constexpr int topk_digit_bits = 11;
inline constexpr int topk_bins = 1 << topk_digit_bits;
inline constexpr int topk_above_slot = topk_bins;  // keys whose resolved prefix is above the threshold's
inline constexpr int topk_slots = topk_bins + 1;


/// The source seen as (index, value) pairs at positions 0..n-1.
template <class Source, class T>
struct TopKSourceDomain {
  Source src;
  KOKKOS_INLINE_FUNCTION T value(std::size_t p) const { return static_cast<T>(src(p)); }
  KOKKOS_INLINE_FUNCTION std::uint32_t index(std::size_t p) const { return static_cast<std::uint32_t>(p); }
};

/// The candidate buffer seen as (index, value) pairs.
template <class IdxView, class ValView>
struct TopKBufferDomain {
  IdxView idx;
  ValView val;
  KOKKOS_INLINE_FUNCTION typename ValView::non_const_value_type value(std::size_t p) const { return val(p); }
  KOKKOS_INLINE_FUNCTION std::uint32_t index(std::size_t p) const { return idx(p); }
};

/// The pass parameters: keys with (key & mask) == prefix are histogrammed on bits [shift, shift + width),
/// keys with (key & mask) > prefix are counted in the above slot.
template <class K>
struct TopKDigit {
  K prefix;
  K mask;
  int shift;
  K digit_mask;  // (1 << width) - 1

  /// The digit, topk_above_slot, or topk_slots for keys below the prefix (not counted). Branch-free: on
  /// tie-heavy data the three cases alternate at random.
  KOKKOS_INLINE_FUNCTION int slot(K key) const {
    const K m = key & mask;
    const int d = static_cast<int>((key >> shift) & digit_mask);
    const int other = m > prefix ? topk_above_slot : topk_slots;
    return m == prefix ? d : other;
  }
};

// ---- histograms ---------------------------------------------------------------------------------------

template <class Domain, class T, class HistView>
struct TopKHistogramHost {
  using K = typename TopKKey<T>::type;
  Domain dom;
  HistView hist;  // (chunks, topk_slots)
  std::size_t len, chunk;
  TopKDigit<K> digit;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    // Two interleaved private histograms: consecutive keys in the same bin do not wait on each other.
    std::uint32_t h0[topk_slots + 1], h1[topk_slots + 1];
    for (int b = 0; b <= topk_slots; ++b) h0[b] = h1[b] = 0;
    const std::size_t begin = c * chunk;
    const std::size_t end = compat::min(len, begin + chunk);
    const TopKDigit<K> dg = digit;  // a local copy: the compiler keeps it in registers
    const Domain& d = dom;
    // Keys below the prefix land in h[topk_slots], which is not reported. The slots of a block are computed
    // first (a loop the compiler vectorises), then counted.
    constexpr int block = 64;
    int s[block];
    for (std::size_t p0 = begin; p0 < end; p0 += block) {
      const int nb = end - p0 < std::size_t(block) ? static_cast<int>(end - p0) : block;
      if (nb == block) {
        for (int j = 0; j < block; ++j) s[j] = dg.slot(TopKKey<T>::of(d.value(p0 + j)));
        for (int j = 0; j < block; j += 2) {
          ++h0[s[j]];
          ++h1[s[j + 1]];
        }
      } else {
        for (int j = 0; j < nb; ++j) ++h0[dg.slot(TopKKey<T>::of(d.value(p0 + j)))];
      }
    }
    for (int b = 0; b < topk_slots; ++b) hist(c, b) = h0[b] + h1[b];
  }
};

template <class ExecSpace, class Domain, class T, class HistView>
struct TopKHistogramTeam {
  using K = typename TopKKey<T>::type;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using scratch_view =
      Kokkos::View<std::uint32_t*, typename ExecSpace::scratch_memory_space, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Domain dom;
  HistView hist;
  std::size_t len, chunk;
  TopKDigit<K> digit;

  static std::size_t scratch_bytes() { return scratch_view::shmem_size(topk_slots); }

  KOKKOS_INLINE_FUNCTION void operator()(const member_type& m) const {
    const std::size_t c = m.league_rank();
    const int slots = topk_slots;  // a copy: device code may not bind references to host constexpr globals
    scratch_view h(m.team_scratch(0), slots);
    Kokkos::parallel_for(Kokkos::TeamThreadRange(m, slots), [&](int b) { h(b) = 0; });
    m.team_barrier();
    const std::size_t begin = c * chunk;
    const std::size_t end = compat::min(len, begin + chunk);
    Kokkos::parallel_for(Kokkos::TeamThreadRange(m, begin, end), [&](std::size_t p) {
      const int s = digit.slot(TopKKey<T>::of(dom.value(p)));
      if (s < slots) Kokkos::atomic_add(&h(s), std::uint32_t(1));
    });
    m.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(m, slots), [&](int b) { hist(c, b) = h(b); });
  }
};

/// g(b) = sum over chunks of hist(c, b); host backends add 64 contiguous slots per iteration.
template <class HistView, class GView>
struct TopKColumnSumHost {
  static constexpr int block = 64;
  HistView hist;
  GView g;
  std::size_t chunks;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t blk) const {
    std::uint32_t acc[block];
    const int b0 = static_cast<int>(blk) * block;
    const int nb = topk_slots - b0 < block ? topk_slots - b0 : block;
    for (int j = 0; j < block; ++j) acc[j] = 0;
    for (std::size_t c = 0; c < chunks; ++c)
      for (int j = 0; j < nb; ++j) acc[j] += hist(c, b0 + j);
    for (int j = 0; j < nb; ++j) g(b0 + j) = acc[j];
  }
};

template <class HistView, class GView>
struct TopKColumnSumDevice {
  HistView hist;
  GView g;
  std::size_t chunks;
  KOKKOS_INLINE_FUNCTION void operator()(int b) const {
    std::uint32_t acc = 0;
    for (std::size_t c = 0; c < chunks; ++c) acc += hist(c, b);
    g(b) = acc;
  }
};

// ---- per-chunk counts, offsets and the ordered write -----------------------------------------------------

/// above(c) = keys of chunk c above the threshold prefix, eq(c) = keys equal to it (threshold digit b).
template <class HistView, class CView>
struct TopKChunkCountsHost {
  HistView hist;
  CView above, eq;
  int b, nbins;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const int above_slot = topk_above_slot;
    std::uint32_t a = hist(c, above_slot);
    for (int j = b + 1; j < nbins; ++j) a += hist(c, j);
    above(c) = a;
    eq(c) = hist(c, b);
  }
};

template <class ExecSpace, class HistView, class CView>
struct TopKChunkCountsTeam {
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  HistView hist;
  CView above, eq;
  int b, nbins;
  KOKKOS_INLINE_FUNCTION void operator()(const member_type& m) const {
    const std::size_t c = m.league_rank();
    std::uint32_t a = 0;
    Kokkos::parallel_reduce(
        Kokkos::TeamThreadRange(m, b + 1, nbins), [&](int j, std::uint32_t& acc) { acc += hist(c, j); }, a);
    const int above_slot = topk_above_slot;
    Kokkos::single(Kokkos::PerTeam(m), [&]() {
      above(c) = a + hist(c, above_slot);
      eq(c) = hist(c, b);
    });
  }
};

/// Exclusive scan over chunks of (above, eq) packed as (above << 32) | eq. The first `need` threshold-equal
/// keys in index order are taken: chunk c writes from offset(c) and takes take(c) of its equal keys.
template <class CView>
struct TopKChunkOffsets {
  using value_type = std::uint64_t;
  CView above, eq, offset, take;
  std::uint64_t need;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c, value_type& update, const bool final) const {
    const std::uint64_t a = above(c), e = eq(c);
    if (final) {
      const std::uint64_t taken = compat::min<std::uint64_t>(update & 0xffffffffu, need);
      offset(c) = static_cast<std::uint32_t>((update >> 32) + taken);
      take(c) = static_cast<std::uint32_t>(compat::min<std::uint64_t>(e, need - taken));
    }
    update += (a << 32) | e;
  }
};

/// Writes, chunk by chunk in index order, the keys with (key & mask) > prefix and the first take(c) keys with
/// (key & mask) == prefix.
template <class Domain, class T, class CView, class OutIdx, class OutVal>
struct TopKChunkWriteHost {
  using K = typename TopKKey<T>::type;
  Domain dom;
  CView above, offset, take;
  OutIdx out_idx;
  OutVal out_val;
  std::size_t len, chunk;
  K prefix, mask;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::size_t begin = c * chunk;
    const std::size_t end = compat::min(len, begin + chunk);
    std::size_t pos = offset(c);
    std::uint32_t left = take(c);
    // Stop after the chunk's last selected entry: chunks with nothing to write are not read at all.
    const std::size_t stop = pos + above(c) + left;
    const Domain& d = dom;
    const K pf = prefix, mk = mask;
    // A vectorised test marks the keys at or above the prefix of a block of 32 in a bit mask; only the
    // marked entries (a few percent for k << n) are visited, lowest bit first.
    constexpr int block = 32;
    for (std::size_t p0 = begin; p0 < end && pos < stop; p0 += block) {
      const int nb = end - p0 < std::size_t(block) ? static_cast<int>(end - p0) : block;
      std::uint32_t bits = 0;
      if (nb == block) {
        for (int j = 0; j < block; ++j) bits |= std::uint32_t((TopKKey<T>::of(d.value(p0 + j)) & mk) >= pf) << j;
      } else {
        for (int j = 0; j < nb; ++j) bits |= std::uint32_t((TopKKey<T>::of(d.value(p0 + j)) & mk) >= pf) << j;
      }
      while (bits != 0) {
        const std::uint32_t low = bits & (~bits + 1u);
        const std::size_t p = p0 + static_cast<std::size_t>(compat::popcount(low - 1u));
        bits ^= low;
        const T v = d.value(p);
        const K m = TopKKey<T>::of(v) & mk;
        if (m > pf || left > 0) {
          if (m == pf) --left;
          out_idx(pos) = d.index(p);
          out_val(pos) = v;
          ++pos;
        }
      }
    }
  }
};

template <class ExecSpace, class Domain, class T, class CView, class OutIdx, class OutVal>
struct TopKChunkWriteTeam {
  using K = typename TopKKey<T>::type;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  Domain dom;
  CView above, offset, take;
  OutIdx out_idx;
  OutVal out_val;
  std::size_t len, chunk;
  K prefix, mask;
  KOKKOS_INLINE_FUNCTION void operator()(const member_type& m) const {
    const std::size_t c = m.league_rank();
    if (above(c) == 0 && take(c) == 0) return;  // nothing to write: the team skips reading its chunk
    const std::size_t begin = c * chunk;
    const std::size_t end = compat::min(len, begin + chunk);
    const std::uint64_t off = offset(c), tk = take(c);
    // partial: (above so far << 32) | (equal so far), an exclusive prefix in the final call.
    Kokkos::parallel_scan(Kokkos::TeamThreadRange(m, begin, end),
                          [&](std::size_t p, std::uint64_t& partial, const bool final) {
                            const T v = dom.value(p);
                            const K km = TopKKey<T>::of(v) & mask;
                            const std::uint64_t inc =
                                km > prefix ? (std::uint64_t(1) << 32) : (km == prefix ? std::uint64_t(1) : 0);
                            if (final && inc != 0) {
                              const std::uint64_t eq_before = partial & 0xffffffffu;
                              if (km > prefix || eq_before < tk) {
                                const std::size_t pos = off + (partial >> 32) + compat::min(eq_before, tk);
                                out_idx(pos) = dom.index(p);
                                out_val(pos) = v;
                              }
                            }
                            partial += inc;
                          });
  }
};

template <class Domain, class OutIdx, class OutVal>
struct TopKSelectAll {
  Domain dom;
  OutIdx out_idx;
  OutVal out_val;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    out_idx(i) = dom.index(i);
    out_val(i) = dom.value(i);
  }
};

template <class ExecSpace, class Source, class T, class Workspace>
void top_k_select_impl(const ExecSpace& space, const Source& src, Workspace& ws);

}  // namespace Impl

/// Outputs and scratch of top_k_select for one (n, k): allocate once, reuse every iteration.
template <class ExecSpace, class T>
class TopKWorkspace {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "top-k selects fp32 or fp64");

 public:
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = T;
  using index_view = Kokkos::View<std::uint32_t*, memory_space>;
  using value_view = Kokkos::View<T*, memory_space>;

  /// Allocates everything top_k_select needs; k is clamped to n; n must be < 2^32.
  TopKWorkspace(std::size_t n, std::size_t k, TopKOptions options = {})
      : n_(n), k_(k < n ? k : n), options_(resolved(options)) {
    if (n >= (std::size_t(1) << 32)) throw std::invalid_argument("terse::TopKWorkspace: n must be < 2^32");
    capacity_ = capacity_of(n, k_, options_);
    const std::size_t chunks = (n + options_.chunk - 1) / options_.chunk;
    // The outputs start zeroed; the scratch is always written before it is read, so it is not initialised.
    const auto scratch = [](const char* label) {
      return Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing);
    };
    indices_ = index_view(scratch("terse::TopK::indices"), k_);
    values_ = value_view(scratch("terse::TopK::values"), k_);
    const ExecSpace space;  // zero the outputs on the workspace's own backend
    Kokkos::deep_copy(space, indices_, std::uint32_t(0));
    Kokkos::deep_copy(space, values_, T(0));
    space.fence();
    hist_ = hist_view(scratch("terse::TopK::chunk_histograms"), chunks, Impl::topk_slots);
    global_ = count_view(scratch("terse::TopK::histogram"), Impl::topk_slots);
    global_host_ = Kokkos::create_mirror_view(global_);
    above_ = count_view(scratch("terse::TopK::chunk_above"), chunks);
    eq_ = count_view(scratch("terse::TopK::chunk_equal"), chunks);
    offset_ = count_view(scratch("terse::TopK::chunk_offset"), chunks);
    take_ = count_view(scratch("terse::TopK::chunk_take"), chunks);
    cand_idx_ = index_view(scratch("terse::TopK::candidate_indices"), capacity_);
    cand_val_ = value_view(scratch("terse::TopK::candidate_values"), capacity_);
  }

  /// Bytes the constructor allocates for (n, k, options): outputs, histograms, chunk counters, candidates.
  static std::size_t bytes(std::size_t n, std::size_t k, TopKOptions options = {}) {
    options = resolved(options);
    const std::size_t kk = k < n ? k : n, chunks = (n + options.chunk - 1) / options.chunk;
    const std::size_t cap = capacity_of(n, kk, options);
    const std::size_t host_mirror = Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible ? 0 : 1;
    return (kk + cap) * (sizeof(std::uint32_t) + sizeof(T)) +
           sizeof(std::uint32_t) * ((chunks + 1 + host_mirror) * Impl::topk_slots + 4 * chunks);
  }

  std::size_t n() const { return n_; }
  std::size_t k() const { return k_; }
  /// Selected indices, ascending (extent k).
  index_view indices() const { return indices_; }
  /// Selected signed values, values()(j) = src(indices()(j)) (extent k).
  value_view values() const { return values_; }

  /// Entries of the candidate buffer and elements per chunk.
  std::size_t candidate_capacity() const { return capacity_; }
  std::size_t chunk() const { return options_.chunk; }
  /// Full reads of the source by the last top_k_select (histogram passes + the compaction or write pass).
  int source_passes() const { return source_passes_; }
  /// Passes over the candidate buffer by the last top_k_select (0 when it was not used).
  int candidate_passes() const { return candidate_passes_; }
  /// Entries compacted into the candidate buffer by the last top_k_select (0 when it was not used).
  std::size_t candidates() const { return candidates_; }

 private:
  static TopKOptions resolved(TopKOptions o) {
    if (o.chunk == 0) o.chunk = Impl::host_loops_v<ExecSpace> ? 65536 : 32768;
    return o;
  }
  static std::size_t capacity_of(std::size_t n, std::size_t k, const TopKOptions& o) {
    std::size_t c = o.candidate_capacity;
    if (c == TopKOptions::npos) {
      const std::size_t extra = n / 8 > 4096 ? n / 8 : 4096;
      c = k + extra < n ? k + extra : n;
    }
    return c > n ? n : c;
  }

  template <class E, class S, class U, class W>
  friend void Impl::top_k_select_impl(const E&, const S&, W&);

  using count_view = Kokkos::View<std::uint32_t*, memory_space>;
  using hist_view = Kokkos::View<std::uint32_t**, Kokkos::LayoutRight, memory_space>;

  std::size_t n_, k_, capacity_ = 0;
  TopKOptions options_;
  index_view indices_;
  value_view values_;
  hist_view hist_;
  count_view global_;
  typename count_view::host_mirror_type global_host_;
  count_view above_, eq_, offset_, take_;
  index_view cand_idx_;
  value_view cand_val_;
  int source_passes_ = 0, candidate_passes_ = 0;
  std::size_t candidates_ = 0;
};

namespace Impl {

template <class ExecSpace, class Source, class T, class Workspace>
void top_k_select_impl(const ExecSpace& space, const Source& src, Workspace& ws) {
  using K = typename TopKKey<T>::type;
  using Range = Kokkos::RangePolicy<ExecSpace>;
  using Team = Kokkos::TeamPolicy<ExecSpace>;
  using hist_view = decltype(ws.hist_);
  using count_view = decltype(ws.above_);
  using index_view = typename Workspace::index_view;
  using value_view = typename Workspace::value_view;
  using SourceDomain = TopKSourceDomain<Source, T>;
  using BufferDomain = TopKBufferDomain<index_view, value_view>;

  const std::size_t n = ws.n_, k = ws.k_, chunk = ws.options_.chunk;
  ws.source_passes_ = ws.candidate_passes_ = 0;
  ws.candidates_ = 0;
  if (k == 0) return;
  const SourceDomain source{src};
  if (k == n) {
    Kokkos::parallel_for("terse::top_k_select_all", Range(space, 0, n),
                         TopKSelectAll<SourceDomain, index_view, value_view>{source, ws.indices_, ws.values_});
    ws.source_passes_ = 1;
    return;
  }

  // Host backends: one thread per chunk unless teams are asked for (tests); device backends: teams.
  bool teams = !host_loops_v<ExecSpace>;
  int team_size = 0;
  if constexpr (host_loops_v<ExecSpace>) {
    if (ws.options_.host_team_size > 0) {
      teams = true;
      team_size = ws.options_.host_team_size;
    }
  }
  auto team_policy = [&](std::size_t league) {
    return team_size > 0 ? Team(space, static_cast<int>(league), team_size)
                         : Team(space, static_cast<int>(league), Kokkos::AUTO);
  };
  auto chunks_of = [&](std::size_t len) { return (len + chunk - 1) / chunk; };

  // Histogram of one digit over a domain of len entries, summed into ws.global_host_.
  auto histogram = [&](const auto& dom, std::size_t len, const TopKDigit<K>& digit) {
    using Dom = std::decay_t<decltype(dom)>;
    const std::size_t chunks = chunks_of(len);
    if (teams) {
      using F = TopKHistogramTeam<ExecSpace, Dom, T, hist_view>;
      Kokkos::parallel_for("terse::top_k_histogram",
                           team_policy(chunks).set_scratch_size(0, Kokkos::PerTeam(F::scratch_bytes())),
                           F{dom, ws.hist_, len, chunk, digit});
    } else {
      if constexpr (host_loops_v<ExecSpace>) {
        Kokkos::parallel_for("terse::top_k_histogram", Range(space, 0, chunks),
                             TopKHistogramHost<Dom, T, hist_view>{dom, ws.hist_, len, chunk, digit});
      }
    }
    if constexpr (host_loops_v<ExecSpace>) {
      using F = TopKColumnSumHost<hist_view, count_view>;
      Kokkos::parallel_for("terse::top_k_histogram_sum", Range(space, 0, (topk_slots + F::block - 1) / F::block),
                           F{ws.hist_, ws.global_, chunks});
    } else {
      Kokkos::parallel_for("terse::top_k_histogram_sum", Range(space, 0, topk_slots),
                           TopKColumnSumDevice<hist_view, count_view>{ws.hist_, ws.global_, chunks});
    }
    Kokkos::deep_copy(space, ws.global_host_, ws.global_);
    space.fence();
  };

  // Writes the entries above (prefix, mask) and the first `need` equal to it, in index order, from the
  // per-chunk histograms of the last pass (threshold digit b of nbins).
  auto write = [&](const auto& dom, std::size_t len, int b, int nbins, std::uint64_t need, K prefix, K mask,
                   const index_view& out_idx, const value_view& out_val) {
    using Dom = std::decay_t<decltype(dom)>;
    const std::size_t chunks = chunks_of(len);
    if (teams) {
      Kokkos::parallel_for("terse::top_k_chunk_counts", team_policy(chunks),
                           TopKChunkCountsTeam<ExecSpace, hist_view, count_view>{ws.hist_, ws.above_, ws.eq_, b, nbins});
    } else {
      Kokkos::parallel_for("terse::top_k_chunk_counts", Range(space, 0, chunks),
                           TopKChunkCountsHost<hist_view, count_view>{ws.hist_, ws.above_, ws.eq_, b, nbins});
    }
    Kokkos::parallel_scan("terse::top_k_chunk_offsets", Range(space, 0, chunks),
                          TopKChunkOffsets<count_view>{ws.above_, ws.eq_, ws.offset_, ws.take_, need});
    if (teams) {
      Kokkos::parallel_for("terse::top_k_write", team_policy(chunks),
                           TopKChunkWriteTeam<ExecSpace, Dom, T, count_view, index_view, value_view>{
                               dom, ws.above_, ws.offset_, ws.take_, out_idx, out_val, len, chunk, prefix, mask});
    } else {
      if constexpr (host_loops_v<ExecSpace>) {
        Kokkos::parallel_for("terse::top_k_write", Range(space, 0, chunks),
                             TopKChunkWriteHost<Dom, T, count_view, index_view, value_view>{
                                 dom, ws.above_, ws.offset_, ws.take_, out_idx, out_val, len, chunk, prefix, mask});
      }
    }
  };

  const BufferDomain buffer{ws.cand_idx_, ws.cand_val_};
  bool in_buffer = false;
  std::size_t len = n;
  K prefix = 0, mask = 0;
  int shift = TopKKey<T>::bits;
  for (;;) {
    const int new_shift = shift > topk_digit_bits ? shift - topk_digit_bits : 0;
    const int width = shift - new_shift;
    const int nbins = 1 << width;
    const K digit_mask = static_cast<K>(nbins - 1);
    const TopKDigit<K> digit{prefix, mask, new_shift, digit_mask};
    if (in_buffer) {
      histogram(buffer, len, digit);
      ++ws.candidate_passes_;
    } else {
      histogram(source, len, digit);
      ++ws.source_passes_;
    }

    // Invariant: above < k <= above + (keys matching the prefix), so the threshold digit exists.
    const auto& g = ws.global_host_;
    std::uint64_t rem = k - g(topk_above_slot);
    int b = nbins - 1;
    for (; b > 0 && g(b) < rem; --b) rem -= g(b);
    const std::uint64_t eq_count = g(b);
    prefix |= static_cast<K>(b) << new_shift;
    mask |= digit_mask << new_shift;
    shift = new_shift;

    if (eq_count == rem || shift == 0) {  // the whole threshold bucket is taken, or the key is resolved
      if (in_buffer) {
        write(buffer, len, b, nbins, rem, prefix, mask, ws.indices_, ws.values_);
        ++ws.candidate_passes_;
      } else {
        write(source, len, b, nbins, rem, prefix, mask, ws.indices_, ws.values_);
        ++ws.source_passes_;
      }
      return;
    }
    const std::uint64_t at_or_above = k - rem + eq_count;
    if (!in_buffer && at_or_above <= ws.capacity_) {
      // Compact every key at or above the prefix into the candidate buffer, in index order.
      write(source, len, b, nbins, eq_count, prefix, mask, ws.cand_idx_, ws.cand_val_);
      ++ws.source_passes_;
      in_buffer = true;
      len = static_cast<std::size_t>(at_or_above);
      ws.candidates_ = len;
    }
  }
}

}  // namespace Impl

/// Selects the k coordinates with the largest |src(i)|, i in [0, n), ties to the lower index: fills
/// ws.indices() in ascending index order and ws.values()(j) = src(ws.indices()(j)) (signed).
/// Source: a rank-1 Kokkos::View of T with extent n, or a copyable functor with
/// `KOKKOS_INLINE_FUNCTION T operator()(std::size_t i) const` (e.g. g(i) + e(i) computed on the fly).
/// Allocates nothing; copies the 2049-counter histogram to a host mirror (and fences) once per pass.
template <class ExecSpace, class Source, class T>
void top_k_select(const ExecSpace& space, const Source& src, TopKWorkspace<ExecSpace, T>& ws) {
  if constexpr (Kokkos::is_view<Source>::value) {
    static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename Source::memory_space>::accessible,
                  "the source view's memory space is not accessible from the execution space");
    static_assert(Source::rank == 1, "top_k_select takes a rank-1 view");
    static_assert(std::is_same<typename Source::non_const_value_type, T>::value,
                  "the source view's value type must be the workspace's");
    if (src.extent(0) != ws.n()) throw std::invalid_argument("terse::top_k_select: source extent != workspace n");
  } else {
    static_assert(std::is_convertible<decltype(std::declval<const Source&>()(std::size_t(0))), T>::value,
                  "a functor source needs T operator()(std::size_t) const");
  }
  Impl::top_k_select_impl<ExecSpace, Source, T>(space, src, ws);
}

namespace Impl {

template <class IdxView, class ValView, class YView>
struct TopKScatterAdd {
  IdxView idx;
  ValView val;
  YView y;
  typename YView::non_const_value_type alpha;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const { y(idx(j)) += alpha * val(j); }
};

template <class IdxView, class YView>
struct TopKZero {
  IdxView idx;
  YView y;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const { y(idx(j)) = 0; }
};


}  // namespace Impl

/// Scatter back: y(idx(j)) += alpha * val(j) for j < count (count defaults to idx.extent(0)). The indices
/// must be distinct (top_k_select's are), so no atomics are needed.
template <class ExecSpace, class IdxView, class ValView, class YView>
void top_k_scatter_add(const ExecSpace& space, const IdxView& idx, const ValView& val, const YView& y,
                       typename YView::non_const_value_type alpha = 1,
                       std::size_t count = TopKOptions::npos) {
  Impl::check_view<ExecSpace, IdxView>();
  Impl::check_view<ExecSpace, ValView>();
  Impl::check_view<ExecSpace, YView>();
  static_assert(std::is_integral<typename IdxView::value_type>::value, "indices are integers");
  if (count == TopKOptions::npos) count = idx.extent(0);
  Impl::require(count <= idx.extent(0) && count <= val.extent(0), "terse::top_k_scatter_add: count exceeds the views");
  Kokkos::parallel_for("terse::top_k_scatter_add", Kokkos::RangePolicy<ExecSpace>(space, 0, count),
                       Impl::TopKScatterAdd<IdxView, ValView, YView>{idx, val, y, alpha});
}

/// y(idx(j)) = 0 for j < count (count defaults to idx.extent(0)): the error-feedback residual
/// e <- p - C(p) computed in place on p (seed 004 Sec. 4).
template <class ExecSpace, class IdxView, class YView>
void top_k_zero(const ExecSpace& space, const IdxView& idx, const YView& y, std::size_t count = TopKOptions::npos) {
  Impl::check_view<ExecSpace, IdxView>();
  Impl::check_view<ExecSpace, YView>();
  static_assert(std::is_integral<typename IdxView::value_type>::value, "indices are integers");
  if (count == TopKOptions::npos) count = idx.extent(0);
  Impl::require(count <= idx.extent(0), "terse::top_k_zero: count exceeds the views");
  Kokkos::parallel_for("terse::top_k_zero", Kokkos::RangePolicy<ExecSpace>(space, 0, count),
                       Impl::TopKZero<IdxView, YView>{idx, y});
}

}  // namespace terse
