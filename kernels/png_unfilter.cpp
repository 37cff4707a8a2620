// PNG unfilter and integer-factor area downscale: the native half of cxrzoo's PNG fast path.
//
// Plain C ABI (loaded with ctypes by cxrzoo/ingest/native.py); every caller checks
// shapes and sizes before calling.  The serial dependency of the Sub/Average/Paeth
// filters (each pixel needs its left neighbour) bounds a single row by latency, so
// 8-bit gray rows are undone two at a time: row y+1 lags row y by one pixel, which
// gives the CPU two independent dependency chains.  Filter types are template
// parameters, so the inner loops carry no per-pixel type dispatch.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "png_wave.h"

typedef uint8_t u8;
#define RESTRICT __restrict

namespace {

inline int paeth(int a, int b, int c) {
  int da = b - c, db = a - c;
  int pa = std::abs(da), pb = std::abs(db), pc = std::abs(da + db);
  int m = pb < pc ? pb : pc;
  int bc = pb <= pc ? b : c;
  return pa <= m ? a : bc;  // selects, not branches: the choice is data dependent
}

template <int T> inline int pred(int a, int b, int c) {
  if (T == 0) return 0;
  if (T == 1) return a;
  if (T == 2) return b;
  if (T == 3) return (a + b) >> 1;
  return paeth(a, b, c);
}

// One row, one byte per pixel: left neighbour and upper-left kept in registers.
template <int T> void row1(const u8* RESTRICT s, const u8* RESTRICT p, u8* RESTRICT cur, long n) {
  if (T == 0) { std::memcpy(cur, s, n); return; }
  if (T == 2) { for (long x = 0; x < n; ++x) cur[x] = (u8)(s[x] + p[x]); return; }
  int a = 0, c = 0;
  for (long x = 0; x < n; ++x) {
    int b = p[x];
    a = (u8)(s[x] + pred<T>(a, b, c));
    cur[x] = (u8)a;
    c = b;
  }
}

// Two rows in flight (types T0, T1 in {Sub, Average, Paeth}); row 1 lags row 0 by one pixel.
template <int T0, int T1>
void pair1(const u8* RESTRICT s0, const u8* RESTRICT s1, const u8* RESTRICT p, u8* RESTRICT c0,
           u8* RESTRICT c1, long n) {
  int a0 = (u8)(s0[0] + pred<T0>(0, p[0], 0));
  c0[0] = (u8)a0;
  int cc0 = p[0];
  int a1 = 0, cc1 = 0, up = a0;  // row 1: left, upper-left, and row 0's value above its next pixel
  for (long x = 1; x < n; ++x) {
    int b = p[x];
    int v0 = (u8)(s0[x] + pred<T0>(a0, b, cc0));
    c0[x] = (u8)v0;
    cc0 = b;
    int v1 = (u8)(s1[x - 1] + pred<T1>(a1, up, cc1));
    c1[x - 1] = (u8)v1;
    a1 = v1;
    cc1 = up;
    up = v0;
    a0 = v0;
  }
  c1[n - 1] = (u8)(s1[n - 1] + pred<T1>(a1, up, cc1));
}

// Any bytes-per-pixel (multi-byte pixels, 16-bit samples): neighbours read from memory.
template <int T> void rowN(const u8* RESTRICT s, const u8* RESTRICT p, u8* RESTRICT cur, long n, long bpp) {
  for (long x = 0; x < n; ++x) {
    int a = x >= bpp ? cur[x - bpp] : 0, c = x >= bpp ? p[x - bpp] : 0;
    cur[x] = (u8)(s[x] + pred<T>(a, p[x], c));
  }
}

typedef void (*row1_fn)(const u8*, const u8*, u8*, long);
typedef void (*rowN_fn)(const u8*, const u8*, u8*, long, long);
typedef void (*pair_fn)(const u8*, const u8*, const u8*, u8*, u8*, long);
const row1_fn ROW1[5] = {row1<0>, row1<1>, row1<2>, row1<3>, row1<4>};
const rowN_fn ROWN[5] = {rowN<0>, rowN<1>, rowN<2>, rowN<3>, rowN<4>};
const pair_fn PAIR[3][3] = {{pair1<1, 1>, pair1<1, 3>, pair1<1, 4>},
                            {pair1<3, 1>, pair1<3, 3>, pair1<3, 4>},
                            {pair1<4, 1>, pair1<4, 3>, pair1<4, 4>}};
inline int pair_index(int t) { return t == 1 ? 0 : t == 3 ? 1 : t == 4 ? 2 : -1; }

// Power-of-two factor 2^L: column sums in uint16 (vectorised), shifts instead of divisions.
template <int L> void area_pow2(const u8* RESTRICT img, long h, long w, u8* RESTRICT out) {
  constexpr long f = 1L << L;
  constexpr uint32_t area = 1u << (2 * L), mask = area - 1;
  const long oh = h / f, ow = w / f;
  std::vector<uint16_t> acc((size_t)w);
  uint16_t* RESTRICT a = acc.data();
  for (long oy = 0; oy < oh; ++oy) {
    const u8* RESTRICT r0 = img + oy * f * w;
    for (long x = 0; x < w; ++x) a[x] = r0[x];
    for (long dy = 1; dy < f; ++dy) {
      const u8* RESTRICT r = img + (oy * f + dy) * w;
      for (long x = 0; x < w; ++x) a[x] = (uint16_t)(a[x] + r[x]);
    }
    u8* RESTRICT o = out + oy * ow;
    for (long ox = 0; ox < ow; ++ox) {
      uint32_t s = 0;
      for (long dx = 0; dx < f; ++dx) s += a[ox * f + dx];
      uint32_t q = s >> (2 * L), r2 = 2 * (s & mask);
      q += (r2 > area) | ((r2 == area) & ((L == 1) | (q & 1)));
      o[ox] = (u8)q;
    }
  }
}

}  // namespace

extern "C" {

// Widest scanline the wavefront takes (its buffers are 32 bytes per column); wider rows,
// which only narrow images can have under the pixel cap, take the scalar path.
const long WAVE_MAX_STRIDE = 1L << 16;

// Undo the filters of h scanlines; raw is h * (1 + stride) bytes, out is h * stride.
// Returns -1, or the index of the first row with an unknown filter type.
long cxr_unfilter(const u8* raw, long h, long stride, long bpp, u8* out) {
  const long st = stride + 1;
  if (bpp == 1 && stride <= WAVE_MAX_STRIDE && cxr_wave_available()) {
    for (long y = 0; y < h; ++y)
      if (raw[y * st] > 4) return y;
    return cxr_unfilter1_wave(raw, h, stride, out);
  }
  std::vector<u8> zero((size_t)stride, 0);
  for (long y = 0; y < h;) {
    const u8* prev = y ? out + (y - 1) * stride : zero.data();
    const int t0 = raw[y * st];
    if (t0 > 4) return y;
    if (bpp != 1) {
      ROWN[t0](raw + y * st + 1, prev, out + y * stride, stride, bpp);
      y += 1;
      continue;
    }
    if (y + 1 < h && stride > 1) {
      const int t1 = raw[(y + 1) * st];
      if (t1 > 4) {
        ROW1[t0](raw + y * st + 1, prev, out + y * stride, stride);
        return y + 1;
      }
      const int i0 = pair_index(t0), i1 = pair_index(t1);
      if (i0 >= 0 && i1 >= 0) {
        PAIR[i0][i1](raw + y * st + 1, raw + (y + 1) * st + 1, prev, out + y * stride, out + (y + 1) * stride,
                     stride);
        y += 2;
        continue;
      }
    }
    ROW1[t0](raw + y * st + 1, prev, out + y * stride, stride);
    y += 1;
  }
  return -1;
}

// Mean of f x f blocks of an h x w image into (h / f) x (w / f), rounded as OpenCV's
// INTER_AREA rounds for an integer factor (halves up for f = 2, to even otherwise).
void cxr_area_down(const u8* img, long h, long w, long f, u8* out) {
  switch (f) {
    case 2: area_pow2<1>(img, h, w, out); return;
    case 4: area_pow2<2>(img, h, w, out); return;
    case 8: area_pow2<3>(img, h, w, out); return;
    default: break;
  }
  const long oh = h / f, ow = w / f, area = f * f;
  std::vector<int32_t> acc((size_t)w);
  for (long oy = 0; oy < oh; ++oy) {
    std::fill(acc.begin(), acc.end(), 0);
    for (long dy = 0; dy < f; ++dy) {
      const u8* r = img + (oy * f + dy) * w;
      for (long x = 0; x < w; ++x) acc[x] += r[x];
    }
    for (long ox = 0; ox < ow; ++ox) {
      int32_t s = 0;
      for (long dx = 0; dx < f; ++dx) s += acc[ox * f + dx];
      int32_t q = s / (int32_t)area, r2 = 2 * (s - q * (int32_t)area);
      if (r2 > area || (r2 == area && (f == 2 || (q & 1)))) q += 1;
      out[oy * ow + ox] = (u8)q;
    }
  }
}

}  // extern "C"
