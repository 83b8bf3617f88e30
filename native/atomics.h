/*
 * atomics.h — the only place exipc names memory orderings.
 *
 * Every acquire has a release partner in another process or thread. Each use
 * carries a label comment naming the edge, e.g. "R1 -> A1: slot before tail",
 * written identically at both ends so `grep` finds the pair (a test checks
 * that every label appears at least twice).
 *
 * Shared words are plain integer fields accessed only through these macros
 * (GCC __atomic builtins, which TSan understands). No raw fences: where a
 * store must be ordered before a later load (the Dekker pattern of the
 * sleeping flag) both sides use the seq_cst forms below.
 */
#ifndef EXIPC_ATOMICS_H
#define EXIPC_ATOMICS_H

#define ATOM_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ATOM_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ATOM_LOAD_SEQCST(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ATOM_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ATOM_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ATOM_STORE_SEQCST(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ATOM_XCHG_SEQCST(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define ATOM_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define ATOM_FETCH_ADD_RELAXED(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
/* Compare-and-swap: acq_rel on success, acquire on failure; *expp is updated
 * with the current value on failure. */
#define ATOM_CAS(p, expp, v) \
    __atomic_compare_exchange_n((p), (expp), (v), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* EXIPC_ATOMICS_H */
