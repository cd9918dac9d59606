/* nn_threads.h - the engine's thread budget in a process: how many OpenMP (and so OpenBLAS)
 * threads it computes with, and that idle ones sleep instead of spinning.
 *
 * libgomp reads OMP_NUM_THREADS, OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when the library is
 * loaded, before main(): a setenv() in main changes nothing (measured: a loop of parallel regions
 * with serial gaps used 1.24 s of CPU with OMP_WAIT_POLICY=PASSIVE set in main, 0.017 s with it
 * in the environment at start). So nn_threads_setup() puts them in the environment and executes
 * the program again (same pid, same argv) when they differ from what the process wants.
 *
 * Why sleep: where a process shares its cores with another busy one (the trainer beside the
 * sampler, `oaif sft` beside a build), threads that spin at OpenMP's barriers (libgomp's default,
 * 300,000 spins) burn the time slices the thread they wait for needs: `oaif sft` ran 3.5x slower
 * beside one busy process with 2 spinning threads, 2x slower than with them sleeping (README,
 * Performance). */
#ifndef NN_THREADS_H
#define NN_THREADS_H

/* A service's `threads` option (its cfg table: key, environment variable): the engine's threads
 * in this process, 0 for OMP_NUM_THREADS or else every CPU it may run on. `oaif up` sets it to the
 * service's share of the machine (--threads). The one default of every service's option. Expands
 * to a CFG_INT_OPT (cfg.h, which the cfg table includes). */
#define NN_THREADS_MAX 1024
#define NN_OPT_THREADS(T, m, KEY, ENV)                                                             \
    CFG_INT_OPT(T, m, .key = KEY, .def = "0", .min = 0, .max = NN_THREADS_MAX, .env = ENV,         \
                .flag = "--threads",                                                               \
                .help = "OpenMP threads of the engine (0: OMP_NUM_THREADS, else every core); "     \
                        "idle ones sleep (OMP_WAIT_POLICY=PASSIVE unless set).")

/* Call first in main(), once the options are read and before any other thread starts: makes the
 * process compute with `threads` threads (0: OMP_NUM_THREADS, else every CPU) whose idle ones sleep
 * (OMP_WAIT_POLICY=PASSIVE, unless the environment sets a policy of its own: ACTIVE keeps
 * libgomp's spinning). When the environment libgomp read at start differs, sets it and executes
 * /proc/self/exe with its argv (/proc/self/cmdline) again (once: a marker in the environment stops
 * a second time; it is removed after). Where that exec fails, the count still takes effect in the
 * calling thread (omp_set_num_threads), the wait policy not; a warning says so. Logs the result
 * once, as `who`:
 * "<who>: threads: N OpenMP (OMP_WAIT_POLICY P)". */
void nn_threads_setup(const char *who, int threads);

/* Sets the calling thread's OpenMP and OpenBLAS thread count (threads > 0; 0 leaves it): for a
 * thread started before or apart from nn_threads_setup's effect, e.g. in a test. */
void nn_threads_apply(int threads);

/* The threads a parallel region of the calling thread gets (omp_get_max_threads()). */
int nn_threads_count(void);

#endif /* NN_THREADS_H */
