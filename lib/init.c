/* Configuration and one-time initialisation. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct sc_globals sc_g = { .signo = 0 };

enum { INIT_NONE, INIT_DONE, INIT_FAILED };
static int init_state;
static int init_error;
static sc_backend init_backend;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* Far from SIGRTMIN, where applications and glibc allocate their own. */
static int default_signal(void)
{
	return SIGRTMAX - 4;
}

/* A number, RTMIN, RTMAX, RTMIN+n or RTMAX-n, with or without SIG in front. */
static int parse_signal(const char *s, int *signo)
{
	int base = 0, sign = 1;
	char *end;

	if (!strncmp(s, "SIG", 3))
		s += 3;
	if (!strncmp(s, "RTMIN", 5) || !strncmp(s, "RTMAX", 5)) {
		base = s[4] == 'N' ? SIGRTMIN : SIGRTMAX;
		sign = s[4] == 'N' ? 1 : -1;
		s += 5;
		if (!*s) {
			*signo = base;
			return 0;
		}
		if (*s++ != (sign > 0 ? '+' : '-'))
			return EINVAL;
	}
	if (*s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v > 1024)
		return EINVAL;
	*signo = base + sign * (int)v;
	return 0;
}

static int resolve_signal(const sc_config *cfg, int *signo)
{
	const char *env = getenv("SYSCANCEL_SIGNAL");

	if (cfg && cfg->signo)
		*signo = cfg->signo;
	else if (env && *env) {
		if (parse_signal(env, signo))
			return EINVAL;
	} else
		*signo = default_signal();
	return *signo >= SIGRTMIN && *signo <= SIGRTMAX ? 0 : EINVAL;
}

/* 0 if this build and kernel offer the backend, else ENOTSUP; EINVAL for no backend. */
static int backend_available(sc_backend backend)
{
	switch (backend) {
	case SC_BACKEND_DEFAULT:
	case SC_BACKEND_SIGNAL:
		return 0;
	case SC_BACKEND_URING:
		return sc_uring_probe();
	}
	return EINVAL;
}

static int resolve_backend(const sc_config *cfg, sc_backend *backend)
{
	const char *env = getenv("SYSCANCEL_BACKEND");

	*backend = cfg ? cfg->backend : SC_BACKEND_DEFAULT;
	if (*backend == SC_BACKEND_DEFAULT && env && *env) {
		if (!strcmp(env, "uring"))
			*backend = SC_BACKEND_URING;
		else if (strcmp(env, "signal"))
			return EINVAL;
		/* the environment asks; an unavailable backend leaves the signal path */
		if (backend_available(*backend))
			*backend = SC_BACKEND_SIGNAL;
	}
	if (*backend == SC_BACKEND_DEFAULT)
		*backend = SC_BACKEND_SIGNAL;
	return backend_available(*backend);
}

static void register_membarrier(void)
{
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	sc_g.use_membarrier = cmds > 0 &&
		(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
		!syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
}

static pthread_key_t slot_key;
static int key_made;

static void after_fork_child(void)
{
	sc_g.pid = getpid();
	if (sc_g.use_membarrier)
		register_membarrier();
	sc_registry_after_fork();
}

static int init_locked(const sc_config *cfg)
{
	int signo, err;
	sc_backend backend;

	err = resolve_signal(cfg, &signo);
	if (!err)
		err = resolve_backend(cfg, &backend);
	if (err)
		return err;
	if (init_state == INIT_DONE)
		return signo == sc_g.signo && backend == init_backend ? 0 : EALREADY;
	if (!key_made) {
		err = pthread_key_create(&slot_key, sc_slot_release);
		if (err)
			return err;
		key_made = 1;
	}
	err = sc_handler_install(signo);
	if (err)
		return err;
	sc_g.pid = getpid();
	sc_g.uring_default = backend == SC_BACKEND_URING;
	init_backend = backend;
	register_membarrier();
	pthread_atfork(NULL, NULL, after_fork_child);
	/* Last: cancels and deadlines test it without the lock, then walk the registry. */
	store_release(&sc_g.signo, signo);
	store_release(&init_state, INIT_DONE);
	return 0;
}

int sc_init(const sc_config *cfg)
{
	pthread_mutex_lock(&init_lock);
	int err = init_locked(cfg);
	pthread_mutex_unlock(&init_lock);
	return err;
}

/* Implicit initialisation on first use: a failure sticks, so calls keep reporting it. */
int sc_ensure_init(void)
{
	if (likely(load_acquire(&init_state) == INIT_DONE))
		return 0;
	pthread_mutex_lock(&init_lock);
	if (init_state == INIT_NONE) {
		init_error = init_locked(NULL);
		if (init_error)
			init_state = INIT_FAILED;
	}
	int err = init_state == INIT_DONE ? 0 : init_error;
	pthread_mutex_unlock(&init_lock);
	return err;
}

int sc_set_slot_key(struct sc_slot *s)
{
	return pthread_setspecific(slot_key, s);
}

int sc_signal_number(void)
{
	return sc_ensure_init() ? -1 : sc_g.signo;
}

int sc_thread_backend(sc_backend backend)
{
	struct sc_slot *s = sc_self;
	int err = backend_available(backend);

	if (!err && !s && !(s = sc_slot_claim(&err)))
		return err;
	if (err)
		return err;
	if (backend == SC_BACKEND_DEFAULT)
		return sc_uring_select(s, sc_g.uring_default);
	return sc_uring_select(s, backend == SC_BACKEND_URING);
}
