/*
 * Scopes under fire.  A worker enters and leaves a scope in a loop and makes
 * a plain libc call in it (read, recv, poll, accept, write, nanosleep) that
 * knows nothing of syscancel, while the test thread cancels the scope's
 * token at a random point: before the scope is entered, between the entry
 * and the call, while the call runs, after it returned (a second call then
 * waits where nothing ever comes: the scope stays cancelled), or right
 * around the scope's exit.  The deadline cases give the token a short random
 * timeout instead.  Every byte and connection is accounted for with the race
 * kinds' streams; after each exit a plain call must run as if there had been
 * no scope, and a bystander thread, half the time in a scope that nobody
 * cancels, must never notice anything.  The test thread is the watchdog.
 *
 * The counts: a call that failed with ECANCELED (ETIMEDOUT) is cancelled
 * if its scope's token was cancelled (its deadline had passed), else
 * spurious, as is either error after the exit or in the bystander; a call
 * that only the cancel or the deadline could end (no data came but the
 * watchdog's) and completed is a lost cancel; EINTR anywhere is a stray
 * EINTR, since nothing here sends a signal of its own (the calls are made
 * again after one, as application code does).
 */
#define _GNU_SOURCE
#include "torture-kinds.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/*
 * Attempts per kind in the short run.  The long run makes SCOPE_FULL_SCALE
 * times as many, more than the other cases' TORTURE_FULL_SCALE: a cancel
 * that finds the thread running takes effect at the service's next look, up
 * to a millisecond later, so these attempts cost more than a race's; the
 * short run stays within a few seconds, the long one sends over 300,000.
 */
#define CANCEL_ATTEMPTS 600
#define DEADLINE_ATTEMPTS 300
#define SCOPE_FULL_SCALE 100

/* Failures a case describes on stderr; it counts them all. */
#define COMPLAINTS_MAX 20

/* Between a supply that must let the call complete and the next one. */
#define RESUPPLY_NS (50 * 1000)
/* A sleep that only a cancel ends, longer than a hang so the watchdog sees it. */
#define ENDLESS_SLEEP_S 3

enum plan {
	PLAN_NONE,		/* no cancel: the call completes with the data supplied */
	PLAN_BEFORE_ENTER,	/* the cancel has returned before the scope is entered */
	PLAN_BEFORE_CALL,	/* ... after the entry, before the call */
	PLAN_DURING,		/* after a random delay, with data before or after it, or none */
	PLAN_AFTER,		/* once the call completed; a second call then waits on idle */
	PLAN_AROUND_EXIT,	/* once the call completed, while the worker leaves the scope */
	PLAN_DEADLINE,		/* a short timeout and no data: the deadline ends the call */
	PLAN_DEADLINE_RACE,	/* a short timeout, and data after a random delay */
};
static const char *const plan_names[] = { "none", "before enter", "before call", "during",
					  "after", "around exit", "deadline", "deadline race" };

/* One plain call, made again after an EINTR as application code does. */
struct plain_call {
	uint32_t rnd;
	bool endless;		/* a sleep that only a cancel or deadline ends */
	int eintr;		/* the EINTRs it saw */
	struct timespec left;	/* the sleep still to go */
};

/*
 * A plain call for each race kind it shares setup, supply and accounting
 * with; prepare runs outside the scope, so that the next call must wait
 * for a supply.
 */
struct scope_kind {
	const char *name;
	void (*prepare)(struct race *r);
	long (*call)(struct race *r, struct plain_call *pc);
};

/* What a plain call returned, and its errno. */
struct outcome {
	long ret;
	int err;
	int eintr;
	int64_t end_ns;
};

struct scope_duel {
	struct race r;		/* the call's endpoint; its tally is the case's */
	struct race idle;	/* never supplied: where the call after a cancel waits */
	const struct kind *kind;
	const struct scope_kind *sk;
	bool deadlines;
	long attempts;
	int ack;		/* eventfd: the canceller is done with the attempt */
	int check[2];		/* a pipe read after each exit, its byte written just before */
	long worker_tid;
	long complaints;
	long stop;		/* a hang was found: end the run */
	long helpers_stop;	/* the bystander's and the heartbeat's */
	long beat;		/* the heartbeat's last, on the worker's CPU */
	/* The attempt in flight, published by the worker through seq. */
	long seq;
	sc_token *tok;
	enum plan plan;
	uint32_t rnd;
	int64_t deadline;
	long entered_seq;	/* PLAN_BEFORE_CALL: the scope is open */
	long before_seq;	/* PLAN_BEFORE_*: the cancel has returned */
	long done_seq;		/* the call has returned */
	long idle_seq;		/* PLAN_AFTER: the second call has returned */
};

/* Preparing the next call, outside the scope: take what the last one left. */
static void drain_stream(struct race *r)
{
	int n;

	ck_assert_int_eq(ioctl(r->fds[0], FIONREAD, &n), 0);
	while (n > 0) {
		ssize_t got = read(r->fds[0], r->call_buf, n < CHUNK_MAX ? (size_t)n : CHUNK_MAX);
		ck_assert_int_gt(got, 0);
		add(&r->t.bad_bytes, stream_check(&r->received, r->call_buf, (size_t)got));
		n -= (int)got;
	}
}

static void drain_connections(struct race *r)
{
	struct pollfd p = { .fd = r->lfd, .events = POLLIN };

	while (poll(&p, 1, 0) == 1) {
		int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		close(fd);
		r->accepts++;
	}
}

/* A pipe has room for a small write until its last byte is taken: fill it to that byte. */
static void fill_pipe(struct race *r)
{
	int fl = fcntl(r->fds[1], F_GETFL);
	uint8_t buf[CHUNK_MAX];
	size_t n = sizeof(buf);
	ssize_t w;

	ck_assert_int_eq(fcntl(r->fds[1], F_SETFL, fl | O_NONBLOCK), 0);
	for (;;) {
		uint64_t pos = r->sent;
		stream_fill(&pos, buf, n);
		w = write(r->fds[1], buf, n);
		if (w > 0)
			r->sent += (uint64_t)w;
		else if (n > 1)
			n /= 2;
		else
			break;
	}
	ck_assert_msg(errno == EAGAIN, "filling the pipe: %s", strerror(errno));
	ck_assert_int_eq(fcntl(r->fds[1], F_SETFL, fl), 0);
}

static void nothing_to_prepare(struct race *r)
{
	(void)r;
}

static long read_plain(struct race *r, struct plain_call *pc)
{
	return read(r->fds[0], r->call_buf, 1 + pc->rnd % 64);
}

static long recv_plain(struct race *r, struct plain_call *pc)
{
	return recv(r->fds[0], r->call_buf, 1 + pc->rnd % 64, 0);
}

static long poll_plain(struct race *r, struct plain_call *pc)
{
	struct pollfd p = { .fd = r->fds[0], .events = POLLIN };

	(void)pc;
	return poll(&p, 1, -1);
}

static long accept_plain(struct race *r, struct plain_call *pc)
{
	(void)pc;
	return accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* At most PIPE_BUF bytes: all of them or none. */
static long write_plain(struct race *r, struct plain_call *pc)
{
	uint64_t pos = r->sent;
	size_t n = 1 + pc->rnd % CHUNK_MAX;

	stream_fill(&pos, r->call_buf, n);
	return write(r->fds[1], r->call_buf, n);
}

static long sleep_plain(struct race *r, struct plain_call *pc)
{
	(void)r;
	if (!pc->eintr)
		pc->left = (struct timespec){ pc->endless ? ENDLESS_SLEEP_S : 0,
					      pc->endless ? 0 : (pc->rnd % 200) * 1000 };
	return nanosleep(&pc->left, &pc->left);
}

static const struct scope_kind scope_kinds[] = {
	{ "read", drain_stream, read_plain },
	{ "recv", drain_stream, recv_plain },
	{ "poll", drain_stream, poll_plain },
	{ "accept", drain_connections, accept_plain },
	{ "write", fill_pipe, write_plain },
	{ "sleep", nothing_to_prepare, sleep_plain },
};
const int torture_scope_count = 2 * ARRAY_SIZE(scope_kinds);

static const struct kind *race_kind(const char *name)
{
	for (int i = 0; i < torture_kind_count; i++)
		if (!strcmp(torture_kinds[i].name, name))
			return &torture_kinds[i];
	ck_abort_msg("no race kind %s", name);
	return NULL;
}

static bool is_deadline(enum plan plan)
{
	return plan == PLAN_DEADLINE || plan == PLAN_DEADLINE_RACE;
}

static enum plan choose_plan(bool deadlines, uint32_t rnd)
{
	if (deadlines)
		return rnd % 3 ? PLAN_DEADLINE_RACE : PLAN_DEADLINE;
	switch (rnd % 10) {
	case 0:
		return PLAN_NONE;
	case 1:
		return PLAN_BEFORE_ENTER;
	case 2:
		return PLAN_BEFORE_CALL;
	case 3:
		return PLAN_AFTER;
	case 4:
		return PLAN_AROUND_EXIT;
	default:
		return PLAN_DURING;
	}
}

/* Mostly within the time a call takes to block, now and then well after. */
static int64_t delay_ns(uint32_t rnd)
{
	switch (rnd % 3) {
	case 0:
		return rnd % 2000;
	case 1:
		return rnd % 20000;
	default:
		return rnd % 100000;
	}
}

/* Up to 300 µs, one in eight already passed when the scope is entered. */
static int64_t timeout_ns(uint32_t rnd)
{
	return rnd % 8 ? rnd % 300000 : 0;
}

/* Only the cancel or deadline can end it: it must not complete. */
static bool endless(enum plan plan)
{
	return plan == PLAN_BEFORE_ENTER || plan == PLAN_BEFORE_CALL || plan == PLAN_DEADLINE;
}

/* The cancel or deadline may have ended it. */
static bool asked(enum plan plan)
{
	return endless(plan) || plan == PLAN_DURING || plan == PLAN_DEADLINE_RACE;
}

static void complain(struct scope_duel *d, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void complain(struct scope_duel *d, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_add_fetch(&d->complaints, 1, __ATOMIC_RELAXED) > COMPLAINTS_MAX)
		return;
	fprintf(stderr, "scope %s: ", d->sk->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* errno seen by application code that nothing asked for. */
static void count_unasked(struct tally *t, int err)
{
	if (err == EINTR)
		add(&t->stray_eintr, 1);
	else if (err == ECANCELED || err == ETIMEDOUT)
		add(&t->spurious, 1);
	else
		add(&t->errors, 1);
}

/*
 * Like most application code, the call is made again after an EINTR: a
 * scope that left it to EINTR would then hang as well as count them.
 */
static struct outcome run_plain(struct scope_duel *d, struct race *r, bool forever)
{
	struct plain_call pc = { .rnd = d->rnd, .endless = forever };
	long ret;
	int err;

	for (;; pc.eintr++) {
		errno = 0;
		ret = d->sk->call(r, &pc);
		err = errno;
		if (ret >= 0 || err != EINTR)
			break;
	}
	return (struct outcome){ ret, ret < 0 ? err : 0, pc.eintr, sc_now_ns() };
}

/*
 * The scope and what runs in it.  Nothing in here prints: once the token
 * is cancelled a write to a pipe or terminal would fail too.
 */
static void in_scope(struct scope_duel *d, sc_token *tok, long i, struct outcome out[2])
{
	enum plan plan = d->plan;

	if (plan == PLAN_BEFORE_ENTER)
		wait_at_least(&d->before_seq, i, "cancel before entry %ld", i);
	ck_assert_int_eq(sc_scope_enter(tok), 0);
	if (plan == PLAN_BEFORE_CALL) {
		store(&d->entered_seq, i);
		wait_at_least(&d->before_seq, i, "cancel before call %ld", i);
	}
	out[0] = run_plain(d, &d->r, endless(plan));
	store(&d->done_seq, i);
	if (plan == PLAN_AFTER) {
		out[1] = run_plain(d, &d->idle, true);
		store(&d->idle_seq, i);
	} else if (plan == PLAN_AROUND_EXIT) {
		spin_ns((d->rnd >> 12) % 10000);
	}
	ck_assert_int_eq(sc_scope_exit(), 0);
}

/*
 * A call that completed keeps its result; one that failed with the cancel's
 * (or deadline's) error must have been asked to, and had no effect, which
 * the stream shows later.  must_end: nothing but the cancel could end it.
 */
static void judge(struct scope_duel *d, struct race *r, struct outcome o, bool may_end,
		  bool must_end)
{
	struct tally *t = &d->r.t;
	int want = is_deadline(d->plan) ? ETIMEDOUT : ECANCELED;

	if (o.eintr) {
		add(&t->stray_eintr, o.eintr);
		complain(d, "plan %s: %d EINTR", plan_names[d->plan], o.eintr);
	}
	if (o.ret >= 0) {
		add(must_end ? &t->lost_cancels : &t->completed, 1);
		d->kind->after_ok(r, (sc_result){ SC_OK, 0, o.ret });
		return;
	}
	if (may_end && o.err == want && (want != ETIMEDOUT || o.end_ns >= d->deadline)) {
		add(&t->cancelled, 1);
		return;
	}
	count_unasked(t, o.err);
	complain(d, "plan %s: -1 errno %d (%s)%s", plan_names[d->plan], o.err, strerror(o.err),
		 o.err == ETIMEDOUT && o.end_ns < d->deadline ? " before the deadline" : "");
}

/* After the exit nothing of the scope is left: a plain call with its data ready just runs. */
static void call_after_exit(struct scope_duel *d)
{
	long n = write(d->check[1], "x", 1);
	int err = errno;
	char b = 0;

	if (n == 1) {
		n = read(d->check[0], &b, 1);
		err = errno;
	}
	if (n == 1 && b == 'x')
		return;
	if (n < 0)
		count_unasked(&d->r.t, err);
	else
		add(&d->r.t.errors, 1);
	complain(d, "plan %s: a plain write and read after the exit: %ld, %s", plan_names[d->plan],
		 n, n < 0 ? strerror(err) : "not the byte written");
}

/* The canceller's go-ahead, awaited in the kernel where a scope's leftovers would show. */
static void wait_ack(struct scope_duel *d)
{
	struct pollfd p = { .fd = d->ack, .events = POLLIN };
	uint64_t v;
	int n, failed = 0;

	while ((n = poll(&p, 1, 30 * 1000)) < 0) {
		count_unasked(&d->r.t, errno);
		ck_assert_msg(++failed < 100, "poll after the exit: %s", strerror(errno));
	}
	ck_assert_msg(n == 1, "the canceller never acknowledged");
	ck_assert_int_eq(read(d->ack, &v, sizeof(v)), sizeof(v));
}

/* A quarter of the attempts run inside an outer scope whose token is never cancelled. */
static void *worker(void *arg)
{
	struct scope_duel *d = arg;
	uint32_t rng = 0x2545f491u;
	sc_token outer;

	run_on_cpu(0);
	ck_assert_int_eq(sc_token_init(&outer, NULL), 0);
	store(&d->worker_tid, gettid());
	for (long i = 1; i <= d->attempts && !load(&d->stop); i++) {
		uint32_t rnd = xorshift(&rng);
		bool nested = (rnd >> 8) % 4 == 0;
		struct outcome out[2] = { { 0 } };
		sc_token tok;

		d->sk->prepare(&d->r);
		ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
		d->tok = &tok;
		d->plan = choose_plan(d->deadlines, rnd);
		d->rnd = xorshift(&rng);
		if (nested)
			ck_assert_int_eq(sc_scope_enter(&outer), 0);
		if (d->deadlines) {
			ck_assert_int_eq(sc_token_set_timeout(&tok, timeout_ns(d->rnd)), 0);
			d->deadline = sc_token_deadline(&tok);
		}
		store(&d->seq, i);
		in_scope(d, &tok, i, out);
		judge(d, &d->r, out[0], asked(d->plan), endless(d->plan));
		if (d->plan == PLAN_AFTER)
			judge(d, &d->idle, out[1], true, true);
		call_after_exit(d);
		wait_ack(d);
		if (nested)
			ck_assert_int_eq(sc_scope_exit(), 0);
		ck_assert_int_eq(sc_token_destroy(&tok), 0);
	}
	ck_assert_int_eq(sc_token_destroy(&outer), 0);
	return NULL;
}

/* Half the time in a scope of its own: no cancel or deadline of the worker's may end its naps. */
static void *bystander(void *arg)
{
	struct scope_duel *d = arg;
	const struct timespec nap = { 0, 100000 };
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	for (long n = 0; !load(&d->helpers_stop); n++) {
		bool scoped = n & 1;
		if (scoped)
			ck_assert_int_eq(sc_scope_enter(&tok), 0);
		int rc = nanosleep(&nap, NULL);
		int err = errno;
		if (scoped)
			ck_assert_int_eq(sc_scope_exit(), 0);
		if (rc) {
			count_unasked(&d->r.t, err);
			complain(d, "the bystander's nap: %s", strerror(err));
		}
	}
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	return NULL;
}

static void cancel_scope(struct scope_duel *d)
{
	ck_assert_int_eq(sc_cancel(d->tok), 0);
	add(&d->r.t.attempts, 1);
}

/* A cancel after a random delay, the data that completes the call before or after it. */
static void cancel_during(struct scope_duel *d, uint32_t rnd)
{
	bool supply = rnd & 1, supply_first = rnd & 2;
	uint32_t r2 = rnd * 2654435761u;

	spin_ns(delay_ns(r2));
	if (supply && supply_first) {
		d->kind->supply(&d->r, r2);
		spin_ns(delay_ns(r2 >> 7) / 8);
	}
	cancel_scope(d);
	if (supply && !supply_first) {
		spin_ns(delay_ns(r2 >> 7) / 8);
		d->kind->supply(&d->r, r2);
	}
}

/* How long thread tid has waited for a CPU while runnable (schedstat), 0 if unknown. */
static int64_t run_queue_ns(pid_t tid)
{
	char path[64], buf[128];
	long long on_cpu, waited;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return sscanf(buf, "%lld %lld", &on_cpu, &waited) == 2 ? waited : 0;
}

/*
 * Beats every millisecond on the worker's CPU: where the beat stops, that
 * CPU runs nothing of ours (a loaded host, a paused virtual machine), and
 * the watchdog does not count the time against the worker.
 */
static void *heartbeat(void *arg)
{
	struct scope_duel *d = arg;
	const struct timespec ms = { 0, MS_NS };

	run_on_cpu(0);
	while (!load(&d->helpers_stop)) {
		store(&d->beat, sc_now_ns());
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/*
 * The time the worker has had since a point, for the watchdog: not the
 * time it waited for a CPU, nor the time its CPU or the watchdog itself ran
 * nothing (on a loaded or paused virtual machine a thread can be ready and
 * not run for seconds).
 */
struct patience {
	const long *beat;
	pid_t tid;
	int64_t since;
	int64_t last;		/* the watchdog's previous look */
	int64_t lost;		/* stalls of the watchdog or of the worker's CPU */
	int64_t queued;		/* the worker's run-queue wait at since */
};

#define STALL_NS (20 * MS_NS)

static void patience_start(struct patience *p, struct scope_duel *d, int64_t since)
{
	pid_t tid = (pid_t)load(&d->worker_tid);

	*p = (struct patience){ &d->beat, tid, since, sc_now_ns(), 0, run_queue_ns(tid) };
}

/* Whether the worker has had more than limit; *queued: its wait for a CPU meanwhile. */
static bool patience_out(struct patience *p, int64_t limit, int64_t *queued)
{
	int64_t now = sc_now_ns();

	if (now - p->last > STALL_NS || now - load(p->beat) > STALL_NS)
		p->lost += now - p->last;
	p->last = now;
	if (now - p->since - p->lost <= limit)
		return false;
	*queued = run_queue_ns(p->tid) - p->queued;
	return now - p->since - p->lost - *queued > limit;
}

static void report_hang(struct scope_duel *d, long i, int64_t queued)
{
	add(&d->r.t.hangs, 1);
	store(&d->stop, 1);
	fprintf(stderr, "scope %s: attempt %ld (plan %s) outlived its cancel by %lld ms; "
		"thread state %c, %lld ms waiting for a CPU meanwhile\n", d->sk->name, i,
		plan_names[d->plan], HANG_NS / MS_NS, thread_state((pid_t)load(&d->worker_tid)),
		(long long)(queued / MS_NS));
}

/*
 * The watchdog: *done must reach i within HANG_NS of since, in the worker's
 * own time.  A hung call is counted, then released with supplies to r so
 * the run can report.  A call that needs data to complete (resupply) gets
 * more now and then.
 */
static void wait_call_end(struct scope_duel *d, const long *done, long i, int64_t since,
			  struct race *r, bool resupply)
{
	int64_t next_supply = since + RESUPPLY_NS, queued = 0;
	struct patience p;
	bool hung = false;

	patience_start(&p, d, since);
	while (load(done) < i) {
		int64_t now = sc_now_ns();
		if (!hung && patience_out(&p, HANG_NS, &queued) && load(done) < i) {
			report_hang(d, i, queued);
			hung = resupply = true;
		}
		ck_assert_msg(now - since < 30 * SEC_NS, "scope %s: attempt %ld never returned",
			      d->sk->name, i);
		if (resupply && now > next_supply) {
			d->kind->supply(r, (uint32_t)now);
			next_supply = now + RESUPPLY_NS;
		}
		sched_yield();
	}
}

static int64_t later(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static void act(struct scope_duel *d, long i)
{
	enum plan plan = d->plan;
	uint32_t rnd = d->rnd, r2 = rnd * 2654435761u;

	switch (plan) {
	case PLAN_NONE:
		d->kind->supply(&d->r, rnd);
		wait_call_end(d, &d->done_seq, i, sc_now_ns(), &d->r, true);
		break;
	case PLAN_BEFORE_CALL:
		wait_at_least(&d->entered_seq, i, "scope %s: entry %ld", d->sk->name, i);
		/* fall through */
	case PLAN_BEFORE_ENTER:
		cancel_scope(d);
		store(&d->before_seq, i);
		wait_call_end(d, &d->done_seq, i, sc_now_ns(), &d->r, false);
		break;
	case PLAN_DURING:
		cancel_during(d, rnd);
		wait_call_end(d, &d->done_seq, i, sc_now_ns(), &d->r, false);
		break;
	case PLAN_AFTER:
	case PLAN_AROUND_EXIT:
		d->kind->supply(&d->r, rnd);
		wait_call_end(d, &d->done_seq, i, sc_now_ns(), &d->r, true);
		spin_ns(r2 % (plan == PLAN_AFTER ? 20000 : 10000));
		cancel_scope(d);
		if (plan == PLAN_AFTER)
			wait_call_end(d, &d->idle_seq, i, sc_now_ns(), &d->idle, false);
		break;
	case PLAN_DEADLINE:
		add(&d->r.t.attempts, 1);
		wait_call_end(d, &d->done_seq, i, later(d->deadline, sc_now_ns()), &d->r, false);
		break;
	case PLAN_DEADLINE_RACE:
		add(&d->r.t.attempts, 1);
		spin_ns(delay_ns(r2));
		d->kind->supply(&d->r, rnd);
		wait_call_end(d, &d->done_seq, i, later(d->deadline, sc_now_ns()), &d->r, false);
		break;
	}
	post_eventfd(d->ack);
}

static void canceller(struct scope_duel *d)
{
	for (long i = 1; i <= d->attempts; i++) {
		struct patience p;
		int64_t queued = 0;

		patience_start(&p, d, sc_now_ns());
		while (load(&d->seq) < i) {
			if (load(&d->stop))
				return;
			ck_assert_msg(!patience_out(&p, PROMPT_NS, &queued) || load(&d->seq) >= i,
				      "scope %s: attempt %ld never started; worker state %c, "
				      "%lld ms waiting for a CPU meanwhile", d->sk->name, i,
				      thread_state((pid_t)load(&d->worker_tid)),
				      (long long)(queued / MS_NS));
			sched_yield();
		}
		act(d, i);
	}
}

static void report(struct scope_duel *d, struct scope_landing l, uint64_t stray)
{
	char name[64];

	snprintf(name, sizeof(name), "scope %s%s", d->deadlines ? "deadline " : "", d->sk->name);
	d->r.t.bad_bytes += d->idle.t.bad_bytes;
	d->r.t.stray_signals = (long)stray;
	printf("%-16s scope signals: skipped a syscall %ld  rewrote an EINTR %ld  missed %ld\n",
	       name, l.skipped, l.rewritten, l.missed);
	tally_report(name, &d->r.t, landings());
	ck_assert_msg(l.skipped + l.rewritten > 0,
		      "%s: no scope signal ended a syscall: the case misses that point", name);
}

void torture_scope(int index)
{
	struct scope_duel *d = calloc(1, sizeof(*d));
	struct scope_landing before = scope_landings();
	uint64_t stray = stray_signals();
	pthread_t w, b, h;
	struct patience p;
	int64_t queued = 0;

	ck_assert_ptr_nonnull(d);
	d->sk = &scope_kinds[index % ARRAY_SIZE(scope_kinds)];
	d->kind = d->r.kind = d->idle.kind = race_kind(d->sk->name);
	d->deadlines = index >= ARRAY_SIZE(scope_kinds);
	d->attempts = d->deadlines ? DEADLINE_ATTEMPTS : CANCEL_ATTEMPTS;
	if (torture_full)
		d->attempts *= SCOPE_FULL_SCALE;
	d->ack = make_eventfd();
	make_pipe(d->check);
	d->kind->setup(&d->r);
	d->kind->setup(&d->idle);
	d->beat = sc_now_ns();
	ck_assert_int_eq(pthread_create(&h, NULL, heartbeat, d), 0);
	ck_assert_int_eq(pthread_create(&b, NULL, bystander, d), 0);
	ck_assert_int_eq(pthread_create(&w, NULL, worker, d), 0);
	patience_start(&p, d, sc_now_ns());
	while (!load(&d->worker_tid)) {
		ck_assert_msg(!patience_out(&p, PROMPT_NS, &queued), "the worker never started");
		sched_yield();
	}
	run_on_cpu(1);
	canceller(d);
	join_within(w, 30 * SEC_NS, "scope worker");
	store(&d->helpers_stop, 1);
	join_within(b, 30 * SEC_NS, "scope bystander");
	join_within(h, 30 * SEC_NS, "scope heartbeat");
	d->kind->finish(&d->r);
	d->kind->finish(&d->idle);
	close(d->ack);
	close_pipe(d->check);
	report(d, scope_landings_since(before), stray_signals() - stray);
	free(d);
}
