// PNG unfilter for one byte per pixel as a SIMD wavefront: 15 rows at once.
//
// Sub, Average and Paeth make every pixel depend on its left neighbour, so one row is a
// serial chain.  Pixel (y, x) needs (y, x-1), (y-1, x) and (y-1, x-1) only, so row y+1 can
// run behind row y.  Here each 16-bit SIMD lane k carries one row, skewed by two columns
// per row: at step t lane k holds column t - 2k.  Lane k's left neighbour is its own value
// one step earlier, and the row above (lane k-1) at columns x and x-1 was computed two and
// three steps earlier, so the only dependency carried from one step to the next is the
// left neighbour, and every step finishes 15 pixels.  Lane 0 carries the row above the
// block (already unfiltered, filter type None); lanes 1..15 carry the block's rows, each
// with its own filter type applied through lane masks.  Skewed rows are turned into
// per-step vectors (and back) with 16x16 byte transposes.  Lanes left of column 0 start
// and stay at 0, which is what PNG prescribes for the missing left neighbour.
#include <cstdint>
#include <cstring>
#include <vector>

#include "png_wave.h"

#if defined(__SSE4_1__)
#include <smmintrin.h>

namespace {

typedef uint8_t u8;
constexpr long LANES = 16, ROWS = LANES - 1, SKEW = 2;

// 16x16 bytes: v[k] holds row k on entry and column k on return.
inline void transpose16(__m128i v[16]) {
  __m128i b[16], c[16], d[16];
  for (int i = 0; i < 8; ++i) {
    b[2 * i] = _mm_unpacklo_epi8(v[2 * i], v[2 * i + 1]);
    b[2 * i + 1] = _mm_unpackhi_epi8(v[2 * i], v[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // rows 4g..4g+3
    const __m128i* s = b + 4 * g;
    c[4 * g + 0] = _mm_unpacklo_epi16(s[0], s[2]);
    c[4 * g + 1] = _mm_unpackhi_epi16(s[0], s[2]);
    c[4 * g + 2] = _mm_unpacklo_epi16(s[1], s[3]);
    c[4 * g + 3] = _mm_unpackhi_epi16(s[1], s[3]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 8h..8h+7
    const __m128i* s = c + 8 * h;
    for (int i = 0; i < 4; ++i) {
      d[8 * h + 2 * i] = _mm_unpacklo_epi32(s[i], s[i + 4]);
      d[8 * h + 2 * i + 1] = _mm_unpackhi_epi32(s[i], s[i + 4]);
    }
  }
  for (int i = 0; i < 8; ++i) {
    v[2 * i] = _mm_unpacklo_epi64(d[i], d[i + 8]);
    v[2 * i + 1] = _mm_unpackhi_epi64(d[i], d[i + 8]);
  }
}

// Lanes moved up by one (lane k takes lane k-1); lane 0 gets 0.  (lo, hi) = lanes 0-7, 8-15.
inline void up_one(__m128i lo, __m128i hi, __m128i& olo, __m128i& ohi) {
  olo = _mm_slli_si128(lo, 2);
  ohi = _mm_alignr_epi8(hi, lo, 14);
}

struct Masks {
  __m128i none, sub, avg, paeth;
};

// The lane's predictor: Paeth, Average, Sub (a), Up (b) or None (0), chosen by lane masks with
// blends ordered so that the Paeth result, the last to be ready, passes one blend only.
inline __m128i predict(__m128i a, __m128i b, __m128i c, const Masks& m) {
  const __m128i bc = _mm_sub_epi16(b, c), ac = _mm_sub_epi16(a, c);
  const __m128i pa = _mm_abs_epi16(bc), pb = _mm_abs_epi16(ac), pc = _mm_abs_epi16(_mm_add_epi16(ac, bc));
  const __m128i b_or_c = _mm_blendv_epi8(b, c, _mm_cmpgt_epi16(pb, pc));
  const __m128i paeth = _mm_blendv_epi8(a, b_or_c, _mm_cmpgt_epi16(pa, _mm_min_epi16(pb, pc)));
  const __m128i avg = _mm_srli_epi16(_mm_add_epi16(a, b), 1);
  const __m128i up_or_none = _mm_andnot_si128(m.none, b);
  const __m128i simple = _mm_blendv_epi8(_mm_blendv_epi8(up_or_none, a, m.sub), avg, m.avg);
  return _mm_blendv_epi8(simple, paeth, m.paeth);
}

inline __m128i lane_mask(const int* types, int want, int first) {
  alignas(16) int16_t v[8];
  for (int i = 0; i < 8; ++i) v[i] = types[first + i] == want ? -1 : 0;
  return _mm_load_si128(reinterpret_cast<const __m128i*>(v));
}

}  // namespace

long cxr_unfilter1_wave(const u8* raw, long h, long stride, u8* out) {
  const long st = stride + 1;
  const long chunks = (stride + SKEW * ROWS + LANES - 1) / LANES, width = chunks * LANES;
  std::vector<u8> in((size_t)(LANES * width)), res((size_t)(LANES * width));
  const __m128i zero = _mm_setzero_si128(), low8 = _mm_set1_epi16(0xFF);
  for (long y0 = 0; y0 < h; y0 += ROWS) {
    const long rows = h - y0 < ROWS ? h - y0 : ROWS;
    int types[LANES] = {0};
    std::memset(in.data(), 0, in.size());
    if (y0) std::memcpy(in.data(), out + (y0 - 1) * stride, (size_t)stride);  // lane 0: the row above
    for (long k = 1; k <= rows; ++k) {
      const u8* src = raw + (y0 + k - 1) * st;
      types[k] = src[0];
      std::memcpy(in.data() + k * width + SKEW * k, src + 1, (size_t)stride);
    }
    const Masks lo_m{lane_mask(types, 0, 0), lane_mask(types, 1, 0), lane_mask(types, 3, 0), lane_mask(types, 4, 0)};
    const Masks hi_m{lane_mask(types, 0, 8), lane_mask(types, 1, 8), lane_mask(types, 3, 8), lane_mask(types, 4, 8)};
    __m128i a_lo = zero, a_hi = zero;    // d(t-1): each lane's left neighbour
    __m128i p2_lo = zero, p2_hi = zero;  // d(t-2)
    __m128i c_lo = zero, c_hi = zero;    // d(t-3) moved up one lane: the upper-left neighbour
    for (long t0 = 0; t0 < width; t0 += LANES) {
      __m128i v[16];
      for (int k = 0; k < 16; ++k) v[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in.data() + k * width + t0));
      transpose16(v);  // v[j]: the 16 lanes' filtered bytes at step t0 + j
      for (int j = 0; j < 16; ++j) {
        __m128i b_lo, b_hi;
        up_one(p2_lo, p2_hi, b_lo, b_hi);  // the row above at this column
        const __m128i r_lo = _mm_unpacklo_epi8(v[j], zero), r_hi = _mm_unpackhi_epi8(v[j], zero);
        const __m128i d_lo = _mm_and_si128(_mm_add_epi16(r_lo, predict(a_lo, b_lo, c_lo, lo_m)), low8);
        const __m128i d_hi = _mm_and_si128(_mm_add_epi16(r_hi, predict(a_hi, b_hi, c_hi, hi_m)), low8);
        c_lo = b_lo;
        c_hi = b_hi;
        p2_lo = a_lo;
        p2_hi = a_hi;
        a_lo = d_lo;
        a_hi = d_hi;
        v[j] = _mm_packus_epi16(d_lo, d_hi);
      }
      transpose16(v);  // v[k]: lane k's unfiltered bytes at steps t0..t0+15
      for (int k = 0; k < 16; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(res.data() + k * width + t0), v[k]);
    }
    for (long k = 1; k <= rows; ++k)
      std::memcpy(out + (y0 + k - 1) * stride, res.data() + k * width + SKEW * k, (size_t)stride);
  }
  return -1;
}

bool cxr_wave_available() { return true; }

#else  // no SSE4.1: the caller keeps its scalar path

long cxr_unfilter1_wave(const uint8_t*, long, long, uint8_t*) { return -2; }
bool cxr_wave_available() { return false; }

#endif
