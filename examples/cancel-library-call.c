/*
 * cancel-library-call: abandon a call into a library that knows nothing of
 * syscancel, here libcurl's curl_easy_perform, from another thread.
 *
 * A worker asks http://127.0.0.1:PORT/ of a server of this program's own that
 * accepts, reads the request and never answers, so curl waits for ever.  The
 * worker makes the call inside sc_scope_enter(&tok) ... sc_scope_exit().  Once
 * the request has come in, main cancels tok: every blocking syscall the
 * worker makes in the scope now fails with ECANCELED, and curl gives up with
 * an error: at once if the worker already waits, else at its next wait, which
 * the library's scope service catches within about a millisecond.  Out of the
 * scope, the same thread and curl handle make a second request, which main
 * answers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <syscancel.h>

#define SEC_NS 1000000000LL
#define CAUSE_USER_STOP 1001	/* an application-defined cancel cause */

struct job {
	sc_token tok;		/* the scope's: main cancels it */
	char url[64];
	CURLcode first, second;
	int64_t first_returned;
	char first_error[CURL_ERROR_SIZE];
	long http_code;
	char body[16];
	size_t body_len;
};

static size_t keep_body(char *data, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n, room = sizeof(j->body) - 1 - j->body_len;

	memcpy(j->body + j->body_len, data, len < room ? len : room);
	j->body_len += len < room ? len : room;
	return len;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();

	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");	/* no proxy from the environment */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);	/* a backstop; the cancel wins */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, j);

	j->first = CURLE_FAILED_INIT;
	if (sc_scope_enter(&j->tok) == 0) {
		j->first = curl_easy_perform(h);	/* main cancels it */
		j->first_returned = sc_now_ns();
		sc_scope_exit();
	}
	strcpy(j->first_error, errbuf[0] ? errbuf : curl_easy_strerror(j->first));

	errbuf[0] = 0;
	j->second = curl_easy_perform(h);	/* outside the scope: answered */
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->http_code);
	curl_easy_cleanup(h);
	return NULL;
}

/* ---- this program's own server, on 127.0.0.1 only ---- */

static int listen_local(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4) ||
	    getsockname(fd, (struct sockaddr *)&a, &alen))
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Accepts a connection and reads its request's head: curl has sent all it will send. */
static int accept_request(sc_token *guard, int listener)
{
	char req[2048];
	size_t len = 0;
	sc_result r = sc_accept(guard, listener, NULL, NULL, SOCK_CLOEXEC);
	int fd = r.status == SC_OK ? (int)r.value : -1;

	while (fd >= 0 && !(len >= 4 && memmem(req, len, "\r\n\r\n", 4))) {
		r = sc_recv(guard, fd, req + len, sizeof(req) - len, 0);
		if (r.status != SC_OK || r.value == 0 || (len += r.value) == sizeof(req)) {
			close(fd);
			fd = -1;
		}
	}
	return fd;
}

int main(void)
{
	static const char reply[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
	struct job j = { 0 };
	sc_token guard;		/* the server's own calls give up after 5 s */
	pthread_t thread;
	int port, listener = listen_local(&port);

	if (listener < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) ||
	    sc_token_init(&j.tok, NULL) || sc_token_init(&guard, NULL) ||
	    sc_token_set_timeout(&guard, 5 * SEC_NS)) {
		perror("setup");
		return 1;
	}
	snprintf(j.url, sizeof(j.url), "http://127.0.0.1:%d/", port);
	if (pthread_create(&thread, NULL, worker, &j)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}

	/* Once the request is in, curl waits for a reply that never comes. */
	int mute = accept_request(&guard, listener);
	int64_t t0 = sc_now_ns();
	sc_cancel_cause(&j.tok, CAUSE_USER_STOP);

	/* The worker's next request, out of the scope, gets an answer. */
	int talk = accept_request(&guard, listener);
	if (talk >= 0 && send(talk, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		perror("send");
	pthread_join(thread, NULL);

	int cause = sc_token_cause(&j.tok);
	printf("curl_easy_perform(\"%s\") in sc_scope_enter(&tok), no answer coming;\n"
	       "  main: sc_cancel_cause(&tok, CAUSE_USER_STOP)\n", j.url);
	printf("  returned %d (%s) %.3f ms after the cancel\n", j.first, j.first_error,
	       (j.first_returned - t0) / 1e6);
	printf("  sc_token_cause(&tok): %d%s\n", cause,
	       cause == CAUSE_USER_STOP ? " (CAUSE_USER_STOP)" : "");
	printf("after sc_scope_exit(), the same thread and handle, answered:\n");
	printf("  returned %d (%s), HTTP %ld, body \"%s\"\n", j.second,
	       curl_easy_strerror(j.second), j.http_code, j.body);

	/* libcurl 7.88 reports its failed poll(2) as CURLE_BAD_FUNCTION_ARGUMENT. */
	int ok = mute >= 0 && talk >= 0 && j.first != CURLE_OK &&
		 j.first != CURLE_OPERATION_TIMEDOUT && cause == CAUSE_USER_STOP &&
		 j.second == CURLE_OK && j.http_code == 200 && !strcmp(j.body, "ok");
	printf("%s\n", ok ? "ok" : "FAILED");
	if (mute >= 0)
		close(mute);
	if (talk >= 0)
		close(talk);
	close(listener);
	sc_token_destroy(&j.tok);
	sc_token_destroy(&guard);
	curl_global_cleanup();
	return ok ? 0 : 1;
}
