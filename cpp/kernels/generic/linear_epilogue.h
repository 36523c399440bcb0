// The scalar zero-point correction of lb.linear's epilogue (kernels.h, LinearEpilogue), written
// once: the scalar path's formula, and the column tail of every SIMD epilogue. Included inside
// each path's anonymous namespace (after lowbit/kernels.h), so every translation unit keeps its
// own copy compiled with its own flags.

// float(C_j[r][c]) of LinearEpilogue from the raw sum s (uint32 wrapping, then as int32).
inline float corrected(const LinearEpilogue& e, int64_t j, int r, int c, uint32_t s) {
  const int64_t w = j * e.w_group + c;
  const uint32_t zb = static_cast<uint32_t>(e.zb ? e.zb[w] : e.zb_all);
  uint32_t v = s + e.rterm[j * e.rt_group + r] * zb;
  if (e.za) v -= static_cast<uint32_t>(e.za[r]) * static_cast<uint32_t>(e.cs[w]);
  return static_cast<float>(static_cast<int32_t>(v));
}

// The same from the sums the large-M epilogue reads (e.s).
inline float group_sum1(const LinearEpilogue& e, int64_t j, int r, int c) {
  return corrected(e, j, r, c, static_cast<uint32_t>(e.s[j * e.s_group + r * e.lds + c]));
}
