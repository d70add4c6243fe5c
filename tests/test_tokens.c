/* Tokens: the tree, stickiness, causes, deadlines and the token lifecycle. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include <syscancel.h>
#include "helpers.h"

START_TEST(init_gives_a_live_token_that_destroys_cleanly)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert(!sc_is_cancelled(&t));
	ck_assert_int_eq(sc_token_cause(&t), 0);
	ck_assert(sc_token_deadline(&t) == SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(destroyed_token_can_be_initialised_again)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert(!sc_is_cancelled(&t));
	ck_assert_int_eq(sc_token_cause(&t), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(child_of_cancelled_parent_starts_cancelled)
{
	sc_token root, child;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_cancel_cause(&root, EPIPE), 0);
	ck_assert_int_eq(sc_token_init(&child, &root), 0);
	ck_assert(sc_is_cancelled(&child));
	ck_assert_int_eq(sc_token_cause(&child), EPIPE);
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

START_TEST(cancel_reaches_descendants_but_not_parents_or_siblings)
{
	sc_token root, a, a1, a11, b, b1;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&a, &root), 0);
	ck_assert_int_eq(sc_token_init(&a1, &a), 0);
	ck_assert_int_eq(sc_token_init(&a11, &a1), 0);
	ck_assert_int_eq(sc_token_init(&b, &root), 0);
	ck_assert_int_eq(sc_token_init(&b1, &b), 0);

	ck_assert_int_eq(sc_cancel(&a), 0);

	ck_assert(sc_is_cancelled(&a));
	ck_assert(sc_is_cancelled(&a1));
	ck_assert(sc_is_cancelled(&a11));
	ck_assert(!sc_is_cancelled(&root));
	ck_assert(!sc_is_cancelled(&b));
	ck_assert(!sc_is_cancelled(&b1));
	ck_assert_int_eq(sc_token_cause(&root), 0);
	ck_assert_int_eq(sc_token_cause(&b1), 0);

	ck_assert_int_eq(sc_token_destroy(&b1), 0);
	ck_assert_int_eq(sc_token_destroy(&b), 0);
	ck_assert_int_eq(sc_token_destroy(&a11), 0);
	ck_assert_int_eq(sc_token_destroy(&a1), 0);
	ck_assert_int_eq(sc_token_destroy(&a), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

START_TEST(cancel_is_sticky_and_idempotent)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert(sc_is_cancelled(&t));
	ck_assert_int_eq(sc_token_cause(&t), ECANCELED);

	/* Every later call under it is cancelled, even with data ready. */
	for (int i = 0; i < 3; i++)
		assert_cancelled(sc_read(&t, p[0], &b, 1));
	ck_assert(sc_is_cancelled(&t));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(first_cancel_cause_wins)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel_cause(&t, EPIPE), 0);
	ck_assert_int_eq(sc_cancel_cause(&t, ENOENT), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert_int_eq(sc_token_cause(&t), EPIPE);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(plain_cancel_records_ECANCELED_as_cause)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert_int_eq(sc_cancel_cause(&t, EPIPE), 0);
	ck_assert_int_eq(sc_token_cause(&t), ECANCELED);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(token_cause_reads_nearest_cancelled_token_in_chain)
{
	struct token_chain ch;
	sc_token other;

	chain_init(&ch);
	ck_assert_int_eq(sc_token_init(&other, &ch.root), 0);

	ck_assert_int_eq(sc_cancel_cause(&ch.mid, EPIPE), 0);
	ck_assert_int_eq(sc_token_cause(&ch.leaf), EPIPE);
	ck_assert_int_eq(sc_token_cause(&ch.root), 0);
	ck_assert_int_eq(sc_token_cause(&other), 0);

	ck_assert_int_eq(sc_cancel_cause(&ch.root, ESHUTDOWN), 0);
	ck_assert_int_eq(sc_token_cause(&ch.root), ESHUTDOWN);
	ck_assert_int_eq(sc_token_cause(&other), ESHUTDOWN);
	ck_assert_int_eq(sc_token_cause(&ch.mid), EPIPE);
	ck_assert_int_eq(sc_token_cause(&ch.leaf), EPIPE);

	ck_assert_int_eq(sc_token_destroy(&other), 0);
	chain_destroy(&ch);
}
END_TEST

START_TEST(token_cause_is_ETIMEDOUT_once_deadline_passes)
{
	sc_token root, child;
	int p[2];
	char b;

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&child, &root), 0);
	ck_assert_int_eq(sc_token_set_timeout(&root, 60 * SEC_NS), 0);
	ck_assert_int_eq(sc_token_cause(&root), 0);
	ck_assert_int_eq(sc_token_cause(&child), 0);

	/* Wait for the deadline by blocking under it. */
	ck_assert_int_eq(sc_token_set_timeout(&root, 50 * MS_NS), 0);
	assert_status(sc_read(&child, p[0], &b, 1), SC_TIMEDOUT, "read under a passed deadline");
	ck_assert_int_eq(sc_token_cause(&root), ETIMEDOUT);
	ck_assert_int_eq(sc_token_cause(&child), ETIMEDOUT);
	ck_assert(!sc_is_cancelled(&child));

	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
	close_pipe(p);
}
END_TEST

START_TEST(cancel_cause_takes_precedence_over_passed_deadline)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_deadline(&t, 0), 0);
	ck_assert_int_eq(sc_token_cause(&t), ETIMEDOUT);
	ck_assert_int_eq(sc_cancel_cause(&t, EPIPE), 0);
	ck_assert_int_eq(sc_token_cause(&t), EPIPE);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(effective_deadline_is_earliest_in_chain)
{
	struct token_chain ch;
	int64_t now = sc_now_ns();
	int64_t d_root = now + 100 * SEC_NS, d_mid = now + 50 * SEC_NS;
	int64_t d_leaf = now + 200 * SEC_NS;

	chain_init(&ch);
	ck_assert(sc_token_deadline(&ch.leaf) == SC_NO_DEADLINE);

	ck_assert_int_eq(sc_token_set_deadline(&ch.root, d_root), 0);
	ck_assert_int_eq(sc_token_deadline(&ch.leaf), d_root);
	ck_assert_int_eq(sc_token_set_deadline(&ch.mid, d_mid), 0);
	ck_assert_int_eq(sc_token_set_deadline(&ch.leaf, d_leaf), 0);
	ck_assert_int_eq(sc_token_deadline(&ch.root), d_root);
	ck_assert_int_eq(sc_token_deadline(&ch.mid), d_mid);
	ck_assert_int_eq(sc_token_deadline(&ch.leaf), d_mid);

	/* Moving an ancestor's deadline earlier moves the descendants'. */
	ck_assert_int_eq(sc_token_set_deadline(&ch.root, now + 10 * SEC_NS), 0);
	ck_assert_int_eq(sc_token_deadline(&ch.leaf), now + 10 * SEC_NS);

	ck_assert_int_eq(sc_token_set_deadline(&ch.root, SC_NO_DEADLINE), 0);
	ck_assert_int_eq(sc_token_set_deadline(&ch.mid, SC_NO_DEADLINE), 0);
	ck_assert_int_eq(sc_token_deadline(&ch.root), SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_deadline(&ch.leaf), d_leaf);

	chain_destroy(&ch);
}
END_TEST

START_TEST(set_timeout_sets_deadline_relative_to_now)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	int64_t before = sc_now_ns();

	ck_assert_int_eq(sc_token_set_timeout(&t, 30 * SEC_NS), 0);
	int64_t after = sc_now_ns();
	int64_t d = sc_token_deadline(&t);

	ck_assert_int_ge(d, before + 30 * SEC_NS);
	ck_assert_int_le(d, after + 30 * SEC_NS);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(set_timeout_rejects_overflow_and_negative_values)
{
	sc_token t;
	int64_t d = sc_now_ns() + 30 * SEC_NS;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_deadline(&t, d), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, INT64_MAX - 1), EOVERFLOW);
	ck_assert_int_eq(sc_token_set_timeout(&t, -1), EINVAL);
	ck_assert_int_eq(sc_token_set_timeout(&t, INT64_MIN), EINVAL);
	/* A rejected value leaves the deadline alone. */
	ck_assert_int_eq(sc_token_deadline(&t), d);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(no_deadline_value_clears_the_deadline)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 30 * SEC_NS), 0);
	ck_assert(sc_token_deadline(&t) != SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_set_timeout(&t, SC_NO_DEADLINE), 0);
	ck_assert(sc_token_deadline(&t) == SC_NO_DEADLINE);

	ck_assert_int_eq(sc_token_set_deadline(&t, 0), 0);
	ck_assert_int_eq(sc_token_cause(&t), ETIMEDOUT);
	ck_assert_int_eq(sc_token_set_deadline(&t, SC_NO_DEADLINE), 0);
	ck_assert(sc_token_deadline(&t) == SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_cause(&t), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(destroy_with_live_child_is_busy_until_child_destroyed)
{
	sc_token root, child;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&child, &root), 0);
	ck_assert_int_eq(sc_token_destroy(&root), EBUSY);
	/* The refused destroy left both tokens working. */
	ck_assert_int_eq(sc_cancel(&root), 0);
	ck_assert(sc_is_cancelled(&child));
	ck_assert_int_eq(sc_token_destroy(&root), EBUSY);
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

START_TEST(initialising_a_live_token_with_a_child_is_busy_and_keeps_the_tree)
{
	sc_token root, child;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&child, &root), 0);
	ck_assert_int_eq(sc_token_init(&root, NULL), EBUSY);
	/* The parent still counts its child, and cancelling it still reaches the child. */
	ck_assert_int_eq(sc_token_destroy(&root), EBUSY);
	ck_assert_int_eq(sc_cancel(&root), 0);
	ck_assert(sc_is_cancelled(&child));
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

START_TEST(initialising_a_token_as_its_own_child_is_EINVAL)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_init(&t, &t), EINVAL);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/* The old parent lets go of a child initialised again, which then hangs from the new one. */
START_TEST(initialising_a_live_unused_child_again_moves_it_to_its_new_parent)
{
	sc_token a, b, child;

	ck_assert_int_eq(sc_token_init(&a, NULL), 0);
	ck_assert_int_eq(sc_token_init(&b, NULL), 0);
	ck_assert_int_eq(sc_token_init(&child, &a), 0);
	ck_assert_int_eq(sc_token_init(&child, &b), 0);
	ck_assert_int_eq(sc_token_destroy(&a), 0);
	ck_assert_int_eq(sc_token_destroy(&b), EBUSY);
	ck_assert_int_eq(sc_cancel(&b), 0);
	ck_assert(sc_is_cancelled(&child));
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&b), 0);
}
END_TEST

START_TEST(initialising_a_token_a_blocked_call_uses_is_busy_and_the_call_still_cancels)
{
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_read_blocked(&c, &t);
	ck_assert_int_eq(sc_token_init(&t, NULL), EBUSY);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(destroy_while_call_blocks_on_token_is_busy)
{
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_read_blocked(&c, &t);

	ck_assert_int_eq(sc_token_destroy(&t), EBUSY);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

/* Tries to destroy a token that a blocked call keeps busy, until told to stop. */
struct destroyer {
	sc_token *tok;
	long stop;
	long tries;
	long not_busy;
};

static void *destroy_while_busy(void *arg)
{
	struct destroyer *d = arg;

	while (!load(&d->stop)) {
		if (sc_token_destroy(d->tok) != EBUSY)
			add(&d->not_busy, 1);
		add(&d->tries, 1);
	}
	return NULL;
}

/* A failing destroy must not make concurrent operations on the live token fail. */
START_TEST(operations_racing_a_failing_destroy_still_succeed)
{
	struct destroyer d = { 0 };
	struct bg_call c;
	pthread_t t;
	sc_token tok, child;
	int failed = 0;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	d.tok = &tok;
	ck_assert_int_eq(pthread_create(&t, NULL, destroy_while_busy, &d), 0);
	wait_at_least(&d.tries, 1, "destroyer starts");
	for (int i = 0; i < 20000; i++) {
		failed += sc_token_set_deadline(&tok, SC_NO_DEADLINE) != 0;
		if (sc_token_init(&child, &tok)) {
			failed++;
			continue;
		}
		failed += sc_token_destroy(&child) != 0;
	}
	store(&d.stop, 1);
	join_within(t, PROMPT_NS, "destroyer");
	ck_assert_msg(failed == 0, "%d operations failed during %ld destroy attempts",
		      failed, load(&d.tries));
	ck_assert_int_eq(load(&d.not_busy), 0);

	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(destroy_after_completed_call_succeeds)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_ok(sc_read(&t, p[0], &b, 1), 1);
	assert_error(sc_read(&t, p[1], &b, 1), EBADF);	/* the write end */
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(double_destroy_is_EINVAL)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_token_destroy(&t), EINVAL);
}
END_TEST

START_TEST(call_with_destroyed_token_is_EINVAL_and_has_no_effect)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);

	assert_error(sc_read(&t, p[0], &b, 1), EINVAL);
	assert_byte_still_readable(p[0]);
	close_pipe(p);
}
END_TEST

/*
 * The first call initialises the library while another thread cancels and
 * sets deadlines, which look at whether the library is initialised without
 * taking its lock.  ThreadSanitizer checks that look is no data race.
 */
struct token_churn {
	long stop, rounds;
};

static void *cancel_and_set_deadlines(void *arg)
{
	struct token_churn *c = arg;

	for (long i = 0; !load(&c->stop); i++) {
		sc_token t;

		if (sc_token_init(&t, NULL) || sc_token_set_timeout(&t, SEC_NS) ||
		    sc_cancel(&t) || sc_token_destroy(&t))
			abort();
		store(&c->rounds, i + 1);
	}
	return NULL;
}

START_TEST(the_first_call_initialises_the_library_while_another_thread_cancels)
{
	static struct token_churn c;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, cancel_and_set_deadlines, &c), 0);
	wait_at_least(&c.rounds, 1, "the other thread cancels");
	assert_ok(sc_sleep(NULL, 0), 0);
	wait_at_least(&c.rounds, load(&c.rounds) + 1, "the other thread cancels again");
	store(&c.stop, 1);
	join_within(t, PROMPT_NS, "the other thread");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tokens");
	TCase *tc = add_tcase(s, "tokens", 30, init_library);

	tcase_add_test(tc, init_gives_a_live_token_that_destroys_cleanly);
	tcase_add_test(tc, destroyed_token_can_be_initialised_again);
	tcase_add_test(tc, initialising_a_live_token_with_a_child_is_busy_and_keeps_the_tree);
	tcase_add_test(tc, initialising_a_token_as_its_own_child_is_EINVAL);
	tcase_add_test(tc, initialising_a_live_unused_child_again_moves_it_to_its_new_parent);
	tcase_add_test(tc, initialising_a_token_a_blocked_call_uses_is_busy_and_the_call_still_cancels);
	tcase_add_test(tc, child_of_cancelled_parent_starts_cancelled);
	tcase_add_test(tc, cancel_reaches_descendants_but_not_parents_or_siblings);
	tcase_add_test(tc, cancel_is_sticky_and_idempotent);
	tcase_add_test(tc, first_cancel_cause_wins);
	tcase_add_test(tc, plain_cancel_records_ECANCELED_as_cause);
	tcase_add_test(tc, token_cause_reads_nearest_cancelled_token_in_chain);
	tcase_add_test(tc, token_cause_is_ETIMEDOUT_once_deadline_passes);
	tcase_add_test(tc, cancel_cause_takes_precedence_over_passed_deadline);
	tcase_add_test(tc, effective_deadline_is_earliest_in_chain);
	tcase_add_test(tc, set_timeout_sets_deadline_relative_to_now);
	tcase_add_test(tc, set_timeout_rejects_overflow_and_negative_values);
	tcase_add_test(tc, no_deadline_value_clears_the_deadline);
	tcase_add_test(tc, destroy_with_live_child_is_busy_until_child_destroyed);
	tcase_add_test(tc, destroy_while_call_blocks_on_token_is_busy);
	tcase_add_test(tc, destroy_after_completed_call_succeeds);
	tcase_add_test(tc, operations_racing_a_failing_destroy_still_succeed);
	tcase_add_test(tc, double_destroy_is_EINVAL);
	tcase_add_test(tc, call_with_destroyed_token_is_EINVAL_and_has_no_effect);
	/* Not initialised up front. */
	tc = add_tcase(s, "first call", 30, NULL);
	tcase_add_test(tc, the_first_call_initialises_the_library_while_another_thread_cancels);
	return run_suite(s, CK_FORK_GETENV);
}
