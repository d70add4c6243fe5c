/* The two builds of a call's inline path that bench/introspect.c compares. */
#ifndef SYSCANCEL_BENCH_INTROSPECT_H
#define SYSCANCEL_BENCH_INTROSPECT_H

long read_published(sc_token *tok, int fd, char *c);
long read_unpublished(sc_token *tok, int fd, char *c);

#endif
