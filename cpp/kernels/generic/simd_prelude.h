// What every per-ISA vector header (cpp/kernels/<isa>/simd.h) includes at global scope, before
// it opens namespace lowbit::<isa>: the standard headers the generic bodies
// (cpp/kernels/generic/*.h) use, since those are included inside a namespace and include nothing.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

// The vector primitives are one to three instructions each; they must inline into the loops of
// the generic bodies, or the abstraction would cost calls and spills.
#define LOWBIT_INLINE inline __attribute__((always_inline))
