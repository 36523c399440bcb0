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

// Float stores leave in program order, so each output line fills in address order as in the
// hand-written loops: an empty volatile asm is a barrier to GCC's instruction scheduler (nothing
// moves across it) but not to the optimizer (it names no memory, so nothing is reloaded). Left
// to the scheduler, GCC 12 issues the stores of a dequantize step out of order: 16M-element
// dequantize ran 8-20% slower on avx2 (streaming and normal stores alike), ~12% on avx512.
#define LOWBIT_STORE_ORDER() __asm__ volatile("")
