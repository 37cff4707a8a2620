// The SIMD wavefront unfilter (png_wave.cpp), used by cxr_unfilter for one byte per pixel.
#pragma once
#include <cstdint>

// Undo the filters of h scanlines of stride bytes (one byte per pixel); raw is h * (1 + stride)
// bytes, every filter type already checked to be 0..4.  Returns -1, or -2 where not compiled.
long cxr_unfilter1_wave(const uint8_t* raw, long h, long stride, uint8_t* out);

// True when cxr_unfilter1_wave is compiled for this target (SSE4.1).
bool cxr_wave_available();
