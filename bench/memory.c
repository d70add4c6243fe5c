/*
 * Memory: this program replaces malloc and friends with counting wrappers
 * around glibc's own, so it sees what the library allocates: a thread's first
 * call, and the calls after it (which must allocate nothing).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- heap accounting ---------------------------------------------------- */

/*
 * glibc lets a program replace malloc: every allocation of the process, the
 * library's included, lands here.  The wrappers forward to glibc's own entry
 * points, which need no dlsym() and so work from the first allocation of
 * the dynamic loader on; the counters are plain atomics, no TLS, no lock.
 * A sanitizer build keeps the sanitizer's malloc.
 */
struct heap_use {
	unsigned long allocs, frees, bytes;	/* bytes asked for, not returned */
};

static struct heap_use heap;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_COUNTED false
#else
#define HEAP_COUNTED true
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static void *counted(void *p, size_t size)
{
	if (p) {
		__atomic_fetch_add(&heap.allocs, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&heap.bytes, size, __ATOMIC_RELAXED);
	}
	return p;
}

void *malloc(size_t size) { return counted(__libc_malloc(size), size); }
void *calloc(size_t n, size_t size) { return counted(__libc_calloc(n, size), n * size); }
void *realloc(void *p, size_t size) { return counted(__libc_realloc(p, size), size); }
void *memalign(size_t align, size_t size) { return counted(__libc_memalign(align, size), size); }
void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }

int posix_memalign(void **p, size_t align, size_t size)
{
	if (align % sizeof(void *) || align & (align - 1))
		return EINVAL;
	void *q = memalign(align, size);
	if (!q)
		return ENOMEM;
	*p = q;
	return 0;
}

void free(void *p)
{
	if (p)
		__atomic_fetch_add(&heap.frees, 1, __ATOMIC_RELAXED);
	__libc_free(p);
}
#endif

/* What the process allocated since *before. */
static struct heap_use heap_since(const struct heap_use *before)
{
	return (struct heap_use){
		.allocs = __atomic_load_n(&heap.allocs, __ATOMIC_RELAXED) - before->allocs,
		.frees = __atomic_load_n(&heap.frees, __ATOMIC_RELAXED) - before->frees,
		.bytes = __atomic_load_n(&heap.bytes, __ATOMIC_RELAXED) - before->bytes,
	};
}

static struct heap_use heap_now(void)
{
	return heap_since(&(struct heap_use){ 0 });
}

/* ---- memory ------------------------------------------------------------- */

static sc_token mem_tok;

static long read_sc_tok(int fd, char *c)
{
	sc_result r = sc_read(&mem_tok, fd, c, 1);
	return r.status == SC_OK ? r.value : -1;
}

/* A new thread on backend b: its first sc_read (with the backend switch), then iters more. */
struct mem_probe {
	sc_backend backend;
	int *pfd;
	long cap, iters;
	bool usable;
	struct heap_use first, after;
};

static void *mem_thread(void *arg)
{
	static const struct fast_method m = FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL);
	struct mem_probe *p = arg;
	struct heap_use h = heap_now();

	p->usable = use_backend(p->backend);
	if (!p->usable)
		return NULL;
	fast_round(&m, p->pfd, 1, p->cap);
	p->first = heap_since(&h);
	h = heap_now();
	fast_round(&m, p->pfd, p->iters, p->cap);
	p->after = heap_since(&h);
	return NULL;
}

/* Runs the probe on pipe pfd alone: this thread only waits, so the counts are the probe's. */
static void mem_run(struct mem_probe *p, int pfd[2], long cap)
{
	pthread_t t;

	p->pfd = pfd;
	p->cap = cap;
	int err = pthread_create(&t, NULL, mem_thread, p);
	if (err)
		die("pthread_create", err);
	pthread_join(t, NULL);
}

static void mem_row(const char *what, const struct mem_probe *p, const struct heap_use *h)
{
	if (!p->usable)
		printf("  %-46s %10s\n", what, "n/a (backend not available)");
	else
		printf("  %-46s %10lu %8lu %8lu\n", what, h->bytes, h->allocs, h->frees);
}

/*
 * Run before any other thread has made a syscancel call and left: the first
 * probe then finds no free slot to reuse, the second reuses the first's.
 */
void bench_memory(long iters)
{
	int pfd[2];

	if (!HEAP_COUNTED) {
		printf("Memory: n/a (a sanitizer build keeps its own malloc)\n\n");
		return;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe2", errno);
	long cap = fcntl(pfd[1], F_GETPIPE_SZ);
	int err = sc_token_init(&mem_tok, NULL);
	if (cap <= 0 || err)
		die("memory setup", cap <= 0 ? errno : err);
	struct mem_probe fresh = { .backend = SC_BACKEND_SIGNAL, .iters = iters },
			 reused = { .backend = SC_BACKEND_SIGNAL, .iters = iters },
			 uring = { .backend = SC_BACKEND_URING, .iters = iters };
	mem_run(&fresh, pfd, cap);
	mem_run(&reused, pfd, cap);
	mem_run(&uring, pfd, cap);
	sc_token_destroy(&mem_tok);
	close(pfd[0]);
	close(pfd[1]);

	printf("Memory: heap use seen by this program's malloc, calloc, realloc, memalign,\n");
	printf("  aligned_alloc, posix_memalign and free; the library's calls land there too;\n");
	printf("  first call: the new thread's sc_thread_backend and its first sc_read\n\n");
	printf("  %-46s %10s %8s %8s\n", "what", "bytes", "allocs", "frees");
	printf("  %-46s %10zu %8s %8s\n", "sc_token: sizeof, wherever the caller puts it",
	       sizeof(sc_token), "-", "-");
	mem_row("new thread's first call, new slot, signal", &fresh, &fresh.first);
	mem_row("new thread's first call, reused slot, signal", &reused, &reused.first);
	mem_row("new thread's first call, reused slot, io_uring", &uring, &uring.first);
	char what[64];
	snprintf(what, sizeof(what), "%ld sc_read(tok) after the first, signal", iters);
	mem_row(what, &fresh, &fresh.after);
	snprintf(what, sizeof(what), "%ld sc_read(tok) after the first, io_uring", iters);
	mem_row(what, &uring, &uring.after);
	printf("\n");
}
