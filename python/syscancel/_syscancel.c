/*
 * The CPython binding of libsyscancel: tokens, scopes, and every blocking
 * call, each parsed with the fast-call protocol and run with the GIL
 * released, so a call costs about what the os module's own costs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/file.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <syscancel.h>

#define MAX_ARGS 8
#define NS_PER_S 1000000000LL

static PyObject *cancelled_type, *timedout_type;

typedef struct {
	PyObject_HEAD
	sc_token tok;
	PyObject *parent;
	int live;
} token_object;

static PyTypeObject token_type;

/* Arguments */

/*
 * Fills out[] from the fast-call arguments: the first npos names may come
 * by position, any by keyword, the first nreq are required.
 */
static int parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		 const char *const *names, int npos, int nreq, PyObject **out)
{
	int n = 0;

	while (names[n])
		out[n++] = NULL;
	if (nargs > npos) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)",
			     fname, npos, nargs);
		return -1;
	}
	for (Py_ssize_t i = 0; i < nargs; i++)
		out[i] = args[i];
	for (Py_ssize_t k = 0; kwnames && k < PyTuple_GET_SIZE(kwnames); k++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, k);
		int i = 0;

		while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
			i++;
		if (i == n) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
				     fname, key);
			return -1;
		}
		if (out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
				     fname, names[i]);
			return -1;
		}
		out[i] = args[nargs + k];
	}
	for (int i = 0; i < nreq; i++) {
		if (!out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
				     fname, names[i]);
			return -1;
		}
	}
	return 0;
}

static int is_none(PyObject *o)
{
	return !o || o == Py_None;
}

static int token_arg(PyObject *o, sc_token **tok)
{
	if (is_none(o)) {
		*tok = NULL;
		return 0;
	}
	if (!PyObject_TypeCheck(o, &token_type)) {
		PyErr_SetString(PyExc_TypeError, "token must be a syscancel.Token or None");
		return -1;
	}
	if (!((token_object *)o)->live) {
		PyErr_SetString(PyExc_ValueError, "token is closed");
		return -1;
	}
	*tok = &((token_object *)o)->tok;
	return 0;
}

/* An int is taken as it is (the kernel judges it); anything else by fileno(). */
static int fd_arg(PyObject *o, int *fd)
{
	if (PyLong_Check(o)) {
		int overflow;
		long v = PyLong_AsLongAndOverflow(o, &overflow);

		if (v == -1 && PyErr_Occurred())
			return -1;
		if (overflow || v < INT_MIN || v > INT_MAX) {
			PyErr_SetString(PyExc_OverflowError, "file descriptor out of range");
			return -1;
		}
		*fd = (int)v;
		return 0;
	}
	*fd = PyObject_AsFileDescriptor(o);
	return *fd == -1 && PyErr_Occurred() ? -1 : 0;
}

static int long_arg(PyObject *o, long min, long max, const char *what, long *out)
{
	int overflow;
	long v;

	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	v = PyLong_AsLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (!overflow && v < min) {
		PyErr_Format(PyExc_ValueError, "%s out of range", what);
		return -1;
	}
	if (overflow || v > max) {
		PyErr_Format(PyExc_OverflowError, "%s out of range", what);
		return -1;
	}
	*out = v;
	return 0;
}

static int int_arg(PyObject *o, int dflt, const char *what, int *out)
{
	long v = dflt;

	if (!is_none(o) && long_arg(o, INT_MIN, INT_MAX, what, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

static int size_arg(PyObject *o, const char *what, size_t *out)
{
	long v;

	if (long_arg(o, 0, PY_SSIZE_T_MAX, what, &v) < 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

/*
 * Seconds (int or float) to nanoseconds.  NaN and negative values are
 * ValueError; a value past what int64 nanoseconds hold is OverflowError,
 * or, where forever is allowed (forever != NULL), sets *forever.
 */
static int seconds_arg(PyObject *o, const char *what, int64_t *ns, int *forever)
{
	double s;

	if (forever)
		*forever = 0;
	if (PyLong_Check(o)) {
		int overflow;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);

		if (v == -1 && PyErr_Occurred())
			return -1;
		if (overflow < 0 || (!overflow && v < 0))
			goto negative;
		if (overflow || v > INT64_MAX / NS_PER_S)
			goto too_large;
		*ns = v * NS_PER_S;
		return 0;
	}
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred()) {
		PyErr_Format(PyExc_TypeError, "%s must be a number of seconds, not %.100s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	if (isnan(s)) {
		PyErr_Format(PyExc_ValueError, "%s is NaN", what);
		return -1;
	}
	if (s < 0)
		goto negative;
	if (s * 1e9 >= 9223372036854775807.0)
		goto too_large;
	*ns = (int64_t)ceil(s * 1e9);
	return 0;
negative:
	PyErr_Format(PyExc_ValueError, "%s must not be negative", what);
	return -1;
too_large:
	if (forever) {
		*forever = 1;
		*ns = SC_NO_DEADLINE;
		return 0;
	}
	PyErr_Format(PyExc_OverflowError, "%s is too large", what);
	return -1;
}

/* Results */

static PyObject *raise_errno(int err)
{
	errno = err;
	return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *raise_typed(PyObject *type, int err, int cause)
{
	PyObject *e = PyObject_CallFunction(type, "is", err, strerror(err));
	PyObject *c;

	if (!e)
		return NULL;
	c = PyLong_FromLong(cause);
	if (!c || PyObject_SetAttrString(e, "cause", c) < 0) {
		Py_XDECREF(c);
		Py_DECREF(e);
		return NULL;
	}
	Py_DECREF(c);
	PyErr_SetObject(type, e);
	Py_DECREF(e);
	return NULL;
}

/*
 * 0 if r succeeded, else raises: Cancelled, TimedOut or OSError.  A signal
 * that cancelled the call (cancel_on_signal) may have a Python handler
 * pending: it runs first, so Ctrl-C still raises KeyboardInterrupt.
 */
static int check(sc_result r, sc_token *tok)
{
	switch (r.status) {
	case SC_OK:
		return 0;
	case SC_CANCELLED:
		if (PyErr_CheckSignals() < 0)
			return -1;
		raise_typed(cancelled_type, ECANCELED, tok ? sc_token_cause(tok) : ECANCELED);
		return -1;
	case SC_TIMEDOUT:
		if (PyErr_CheckSignals() < 0)
			return -1;
		raise_typed(timedout_type, ETIMEDOUT, ETIMEDOUT);
		return -1;
	default:
		raise_errno(r.error);
		return -1;
	}
}

static PyObject *int_result(sc_result r, sc_token *tok)
{
	return check(r, tok) < 0 ? NULL : PyLong_FromLong(r.value);
}

static PyObject *none_result(sc_result r, sc_token *tok)
{
	if (check(r, tok) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static int check_status(int err)
{
	if (err) {
		raise_errno(err);
		return -1;
	}
	return 0;
}

/* Socket addresses */

static int socket_family(int fd)
{
	int family;
	socklen_t len = sizeof(family);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0) {
		raise_errno(errno);
		return -1;
	}
	return family;
}

static PyObject *address_to_py(const struct sockaddr_storage *ss, socklen_t len)
{
	char host[INET6_ADDRSTRLEN];
	const struct sockaddr_in *in4 = (const void *)ss;
	const struct sockaddr_in6 *in6 = (const void *)ss;
	const struct sockaddr_un *un = (const void *)ss;
	size_t path = offsetof(struct sockaddr_un, sun_path);

	if (len == 0)
		Py_RETURN_NONE;
	switch (ss->ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		return Py_BuildValue("(si)", host, ntohs(in4->sin_port));
	case AF_INET6:
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port),
				     (unsigned)ntohl(in6->sin6_flowinfo), (unsigned)in6->sin6_scope_id);
	case AF_UNIX:
		if (len <= path)
			return PyUnicode_FromString("");
		if (un->sun_path[0] == '\0')
			return PyBytes_FromStringAndSize(un->sun_path, len - path);
		return PyUnicode_DecodeFSDefaultAndSize(un->sun_path,
							strnlen(un->sun_path, len - path));
	default:
		return PyBytes_FromStringAndSize((const char *)ss, len);
	}
}

static int resolve(int family, const char *host, int port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	struct addrinfo hints = { .ai_family = family }, *res = NULL;
	int err;

	Py_BEGIN_ALLOW_THREADS
	err = getaddrinfo(host, NULL, &hints, &res);
	Py_END_ALLOW_THREADS
	if (err) {
		PyErr_Format(PyExc_OSError, "cannot resolve %s: %s", host, gai_strerror(err));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	if (family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	return 0;
}

static int inet_address(int family, PyObject *o, struct sockaddr_storage *ss, socklen_t *len)
{
	const char *host;
	int port;
	unsigned flowinfo = 0, scope_id = 0;
	struct sockaddr_in *in4 = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;

	if (!PyTuple_Check(o) ||
	    !PyArg_ParseTuple(o, family == AF_INET ? "si" : "si|II", &host, &port, &flowinfo,
			      &scope_id)) {
		PyErr_Clear();
		PyErr_SetString(PyExc_TypeError, family == AF_INET ?
				"address must be a (host, port) tuple" :
				"address must be a (host, port[, flowinfo, scope_id]) tuple");
		return -1;
	}
	if (port < 0 || port > 65535) {
		PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = family;
	if (family == AF_INET) {
		*len = sizeof(*in4);
		in4->sin_port = htons(port);
		if (!*host || inet_pton(AF_INET, host, &in4->sin_addr) == 1)
			return 0;
	} else {
		*len = sizeof(*in6);
		in6->sin6_port = htons(port);
		in6->sin6_flowinfo = htonl(flowinfo);
		in6->sin6_scope_id = scope_id;
		if (!*host || inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
			return 0;
	}
	return resolve(family, host, port, ss, len);
}

static int unix_address(PyObject *o, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (void *)ss;
	PyObject *path = NULL;
	Py_ssize_t n;

	if (PyBytes_Check(o)) {
		path = o;
		Py_INCREF(path);
	} else if (!PyUnicode_FSConverter(o, &path)) {
		return -1;
	}
	n = PyBytes_GET_SIZE(path);
	if ((size_t)n >= sizeof(un->sun_path)) {
		Py_DECREF(path);
		PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
		return -1;
	}
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, PyBytes_AS_STRING(path), n);
	*len = offsetof(struct sockaddr_un, sun_path) + n + (n && un->sun_path[0] ? 1 : 0);
	Py_DECREF(path);
	return 0;
}

static int address_from_py(int fd, PyObject *o, struct sockaddr_storage *ss, socklen_t *len)
{
	int family = socket_family(fd);

	switch (family) {
	case -1:
		return -1;
	case AF_INET:
	case AF_INET6:
		return inet_address(family, o, ss, len);
	case AF_UNIX:
		return unix_address(o, ss, len);
	default:
		PyErr_Format(PyExc_OSError, "address family %d is not supported", family);
		return -1;
	}
}

/* Buffers */

static int writable_arg(PyObject *o, Py_buffer *view)
{
	if (PyObject_GetBuffer(o, view, PyBUF_WRITABLE | PyBUF_SIMPLE) == 0)
		return 0;
	PyErr_Clear();
	PyErr_Format(PyExc_TypeError, "a writable bytes-like object is required, not '%.100s'",
		     Py_TYPE(o)->tp_name);
	return -1;
}

static int readable_arg(PyObject *o, Py_buffer *view)
{
	return PyObject_GetBuffer(o, view, PyBUF_SIMPLE);
}

/* A fresh bytes object for up to n bytes; finish_bytes() trims it to what came. */
static PyObject *new_bytes(size_t n)
{
	return PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
}

static PyObject *finish_bytes(PyObject *b, sc_result r, sc_token *tok)
{
	if (check(r, tok) < 0) {
		Py_DECREF(b);
		return NULL;
	}
	if (r.value != PyBytes_GET_SIZE(b) && _PyBytes_Resize(&b, r.value) < 0)
		return NULL;
	return b;
}

/* Calls */

#define ARGS PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames
#define PARSE(fname, npos, nreq, ...)                                                      \
	static const char *const names[] = { __VA_ARGS__, NULL };                          \
	PyObject *a[MAX_ARGS];                                                             \
	(void)self;                                                                        \
	if (parse(fname, args, nargs, kwnames, names, npos, nreq, a) < 0)                  \
		return NULL

static PyObject *py_read(ARGS)
{
	PARSE("read", 3, 2, "fd", "n", "token");
	sc_token *tok;
	size_t n;
	int fd;
	PyObject *b;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || size_arg(a[1], "n", &n) < 0 || token_arg(a[2], &tok) < 0)
		return NULL;
	if (!(b = new_bytes(n)))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_read(tok, fd, PyBytes_AS_STRING(b), n);
	Py_END_ALLOW_THREADS
	return finish_bytes(b, r, tok);
}

static PyObject *py_readinto(ARGS)
{
	PARSE("readinto", 3, 2, "fd", "buffer", "token");
	sc_token *tok;
	Py_buffer v;
	int fd;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 || writable_arg(a[1], &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_read(tok, fd, v.buf, v.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

static PyObject *py_write(ARGS)
{
	PARSE("write", 3, 2, "fd", "data", "token");
	sc_token *tok;
	Py_buffer v;
	int fd;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 || readable_arg(a[1], &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_write(tok, fd, v.buf, v.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

static int offset_arg(PyObject *o, off_t *off)
{
	long v;

	if (long_arg(o, 0, LONG_MAX, "offset", &v) < 0)
		return -1;
	*off = v;
	return 0;
}

static PyObject *py_pread(ARGS)
{
	PARSE("pread", 4, 3, "fd", "n", "offset", "token");
	sc_token *tok;
	size_t n;
	off_t off;
	int fd;
	PyObject *b;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || size_arg(a[1], "n", &n) < 0 || offset_arg(a[2], &off) < 0 ||
	    token_arg(a[3], &tok) < 0)
		return NULL;
	if (!(b = new_bytes(n)))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_pread(tok, fd, PyBytes_AS_STRING(b), n, off);
	Py_END_ALLOW_THREADS
	return finish_bytes(b, r, tok);
}

static PyObject *py_pwrite(ARGS)
{
	PARSE("pwrite", 4, 3, "fd", "data", "offset", "token");
	sc_token *tok;
	Py_buffer v;
	off_t off;
	int fd;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || offset_arg(a[2], &off) < 0 || token_arg(a[3], &tok) < 0 ||
	    readable_arg(a[1], &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_pwrite(tok, fd, v.buf, v.len, off);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

/* readv/writev: the buffers of a sequence, held while the call runs. */
struct vec {
	Py_ssize_t n;
	Py_buffer *views;
	struct iovec *iov;
};

static void vec_release(struct vec *v)
{
	for (Py_ssize_t i = 0; i < v->n; i++)
		PyBuffer_Release(&v->views[i]);
	PyMem_Free(v->views);
	PyMem_Free(v->iov);
}

static int vec_get(PyObject *seq, int writable, struct vec *v)
{
	PyObject *fast = PySequence_Fast(seq, "buffers must be a sequence");
	Py_ssize_t n;

	v->n = 0;
	if (!fast)
		return -1;
	n = PySequence_Fast_GET_SIZE(fast);
	if (n > IOV_MAX) {
		Py_DECREF(fast);
		PyErr_SetString(PyExc_OverflowError, "too many buffers (more than IOV_MAX)");
		return -1;
	}
	v->views = PyMem_Calloc(n ? n : 1, sizeof(*v->views));
	v->iov = PyMem_Calloc(n ? n : 1, sizeof(*v->iov));
	if (!v->views || !v->iov) {
		Py_DECREF(fast);
		vec_release(v);
		PyErr_NoMemory();
		return -1;
	}
	for (; v->n < n; v->n++) {
		PyObject *item = PySequence_Fast_GET_ITEM(fast, v->n);
		Py_buffer *view = &v->views[v->n];

		if ((writable ? writable_arg(item, view) : readable_arg(item, view)) < 0) {
			Py_DECREF(fast);
			vec_release(v);
			return -1;
		}
		v->iov[v->n] = (struct iovec){ view->buf, view->len };
	}
	Py_DECREF(fast);
	return 0;
}

static PyObject *vector_call(ARGS, const char *fname, int writable)
{
	PARSE(fname, 3, 2, "fd", "buffers", "token");
	sc_token *tok;
	struct vec v;
	int fd;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 || vec_get(a[1], writable, &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = writable ? sc_readv(tok, fd, v.iov, (int)v.n) : sc_writev(tok, fd, v.iov, (int)v.n);
	Py_END_ALLOW_THREADS
	vec_release(&v);
	return int_result(r, tok);
}

static PyObject *py_readv(ARGS)
{
	return vector_call(self, args, nargs, kwnames, "readv", 1);
}

static PyObject *py_writev(ARGS)
{
	return vector_call(self, args, nargs, kwnames, "writev", 0);
}

static PyObject *py_recv(ARGS)
{
	PARSE("recv", 3, 2, "sock", "n", "token", "flags");
	sc_token *tok;
	size_t n;
	int fd, flags;
	PyObject *b;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || size_arg(a[1], "n", &n) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[3], 0, "flags", &flags) < 0)
		return NULL;
	if (!(b = new_bytes(n)))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_recv(tok, fd, PyBytes_AS_STRING(b), n, flags);
	Py_END_ALLOW_THREADS
	return finish_bytes(b, r, tok);
}

/* The part of a buffer that nbytes (0 or None: all of it) asks for. */
static int nbytes_arg(PyObject *o, const Py_buffer *v, size_t *n)
{
	if (is_none(o)) {
		*n = v->len;
		return 0;
	}
	if (size_arg(o, "nbytes", n) < 0)
		return -1;
	if (*n == 0)
		*n = v->len;
	if (*n > (size_t)v->len) {
		PyErr_SetString(PyExc_ValueError, "nbytes is greater than the buffer");
		return -1;
	}
	return 0;
}

static PyObject *py_recv_into(ARGS)
{
	PARSE("recv_into", 3, 2, "sock", "buffer", "token", "nbytes", "flags");
	sc_token *tok;
	Py_buffer v;
	size_t n;
	int fd, flags;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[4], 0, "flags", &flags) < 0 || writable_arg(a[1], &v) < 0)
		return NULL;
	if (nbytes_arg(a[3], &v, &n) < 0) {
		PyBuffer_Release(&v);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	r = sc_recv(tok, fd, v.buf, n, flags);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

static PyObject *py_recvfrom(ARGS)
{
	PARSE("recvfrom", 3, 2, "sock", "n", "token", "flags");
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	sc_token *tok;
	size_t n;
	int fd, flags;
	PyObject *b, *addr;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || size_arg(a[1], "n", &n) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[3], 0, "flags", &flags) < 0)
		return NULL;
	if (!(b = new_bytes(n)))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_recvfrom(tok, fd, PyBytes_AS_STRING(b), n, flags, (struct sockaddr *)&ss, &alen);
	Py_END_ALLOW_THREADS
	if (!(b = finish_bytes(b, r, tok)))
		return NULL;
	if (!(addr = address_to_py(&ss, alen))) {
		Py_DECREF(b);
		return NULL;
	}
	return Py_BuildValue("(NN)", b, addr);
}

static PyObject *py_recvfrom_into(ARGS)
{
	PARSE("recvfrom_into", 3, 2, "sock", "buffer", "token", "nbytes", "flags");
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	sc_token *tok;
	Py_buffer v;
	size_t n;
	int fd, flags;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[4], 0, "flags", &flags) < 0 || writable_arg(a[1], &v) < 0)
		return NULL;
	if (nbytes_arg(a[3], &v, &n) < 0) {
		PyBuffer_Release(&v);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	r = sc_recvfrom(tok, fd, v.buf, n, flags, (struct sockaddr *)&ss, &alen);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	if (check(r, tok) < 0)
		return NULL;
	return Py_BuildValue("(lN)", r.value, address_to_py(&ss, alen));
}

static PyObject *py_send(ARGS)
{
	PARSE("send", 3, 2, "sock", "data", "token", "flags");
	sc_token *tok;
	Py_buffer v;
	int fd, flags;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[3], 0, "flags", &flags) < 0 || readable_arg(a[1], &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_send(tok, fd, v.buf, v.len, flags);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

/* Every byte, or an exception; what was sent before it is lost to the caller, as with socket. */
static PyObject *py_sendall(ARGS)
{
	PARSE("sendall", 3, 2, "sock", "data", "token", "flags");
	sc_token *tok;
	Py_buffer v;
	Py_ssize_t done = 0;
	int fd, flags;
	sc_result r = { .status = SC_OK };

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[3], 0, "flags", &flags) < 0 || readable_arg(a[1], &v) < 0)
		return NULL;
	while (done < v.len && r.status == SC_OK) {
		Py_BEGIN_ALLOW_THREADS
		r = sc_send(tok, fd, (char *)v.buf + done, v.len - done, flags);
		Py_END_ALLOW_THREADS
		done += r.status == SC_OK ? r.value : 0;
	}
	PyBuffer_Release(&v);
	return none_result(r, tok);
}

static PyObject *py_sendto(ARGS)
{
	PARSE("sendto", 4, 3, "sock", "data", "address", "token", "flags");
	struct sockaddr_storage ss;
	socklen_t alen;
	sc_token *tok;
	Py_buffer v;
	int fd, flags;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[3], &tok) < 0 ||
	    int_arg(a[4], 0, "flags", &flags) < 0 || address_from_py(fd, a[2], &ss, &alen) < 0 ||
	    readable_arg(a[1], &v) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_sendto(tok, fd, v.buf, v.len, flags, (struct sockaddr *)&ss, alen);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	return int_result(r, tok);
}

/* recvmsg(sock, bufsize, token=None, *, ancbufsize=0, flags=0) */
static PyObject *ancillary_to_py(struct msghdr *msg)
{
	PyObject *list = PyList_New(0);

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); list && c; c = CMSG_NXTHDR(msg, c)) {
		size_t n = c->cmsg_len - CMSG_LEN(0);
		PyObject *item = Py_BuildValue("(iiy#)", c->cmsg_level, c->cmsg_type,
					       (const char *)CMSG_DATA(c), (Py_ssize_t)n);

		if (!item || PyList_Append(list, item) < 0)
			Py_CLEAR(list);
		Py_XDECREF(item);
	}
	return list;
}

static PyObject *py_recvmsg(ARGS)
{
	PARSE("recvmsg", 3, 2, "sock", "bufsize", "token", "ancbufsize", "flags");
	struct sockaddr_storage ss;
	struct msghdr msg = { 0 };
	struct iovec iov;
	sc_token *tok;
	size_t n, anc = 0;
	int fd, flags;
	PyObject *b, *res = NULL;
	void *ctl = NULL;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || size_arg(a[1], "bufsize", &n) < 0 ||
	    token_arg(a[2], &tok) < 0 || (a[3] && size_arg(a[3], "ancbufsize", &anc) < 0) ||
	    int_arg(a[4], 0, "flags", &flags) < 0)
		return NULL;
	if (!(b = new_bytes(n)))
		return NULL;
	if (anc && !(ctl = PyMem_Calloc(1, anc))) {
		Py_DECREF(b);
		return PyErr_NoMemory();
	}
	iov = (struct iovec){ PyBytes_AS_STRING(b), n };
	msg = (struct msghdr){ .msg_name = &ss, .msg_namelen = sizeof(ss), .msg_iov = &iov,
			       .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = anc };
	Py_BEGIN_ALLOW_THREADS
	r = sc_recvmsg(tok, fd, &msg, flags);
	Py_END_ALLOW_THREADS
	if ((b = finish_bytes(b, r, tok)))
		res = Py_BuildValue("(NNiN)", b, anc ? ancillary_to_py(&msg) : PyList_New(0),
				    msg.msg_flags, address_to_py(&ss, msg.msg_namelen));
	PyMem_Free(ctl);
	return res;
}

/* The ancillary items (level, type, data) laid out as the kernel wants them. */
static int ancillary_from_py(PyObject *seq, struct msghdr *msg)
{
	PyObject *fast = PySequence_Fast(seq, "ancdata must be a sequence");
	Py_ssize_t n;
	size_t space = 0;
	struct cmsghdr *c;

	if (!fast)
		return -1;
	n = PySequence_Fast_GET_SIZE(fast);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *item = PySequence_Fast_GET_ITEM(fast, i);

		if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
		    !PyBytes_Check(PyTuple_GET_ITEM(item, 2))) {
			Py_DECREF(fast);
			PyErr_SetString(PyExc_TypeError, "ancdata items must be (level, type, bytes)");
			return -1;
		}
		space += CMSG_SPACE(PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 2)));
	}
	msg->msg_controllen = space;
	msg->msg_control = space ? PyMem_Calloc(1, space) : NULL;
	if (space && !msg->msg_control) {
		Py_DECREF(fast);
		PyErr_NoMemory();
		return -1;
	}
	c = CMSG_FIRSTHDR(msg);
	for (Py_ssize_t i = 0; i < n && c; i++, c = CMSG_NXTHDR(msg, c)) {
		PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
		PyObject *data = PyTuple_GET_ITEM(item, 2);

		c->cmsg_level = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
		c->cmsg_type = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
		c->cmsg_len = CMSG_LEN(PyBytes_GET_SIZE(data));
		memcpy(CMSG_DATA(c), PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
	}
	Py_DECREF(fast);
	if (PyErr_Occurred()) {
		PyMem_Free(msg->msg_control);
		return -1;
	}
	return 0;
}

/* sendmsg(sock, buffers, token=None, *, ancdata=(), flags=0, address=None) */
static PyObject *py_sendmsg(ARGS)
{
	PARSE("sendmsg", 3, 2, "sock", "buffers", "token", "ancdata", "flags", "address");
	struct sockaddr_storage ss;
	struct msghdr msg = { 0 };
	socklen_t alen = 0;
	sc_token *tok;
	struct vec v;
	int fd, flags;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[4], 0, "flags", &flags) < 0 ||
	    (!is_none(a[5]) && address_from_py(fd, a[5], &ss, &alen) < 0) ||
	    (!is_none(a[3]) && ancillary_from_py(a[3], &msg) < 0))
		return NULL;
	if (vec_get(a[1], 0, &v) < 0) {
		PyMem_Free(msg.msg_control);
		return NULL;
	}
	msg.msg_name = alen ? &ss : NULL;
	msg.msg_namelen = alen;
	msg.msg_iov = v.iov;
	msg.msg_iovlen = v.n;
	Py_BEGIN_ALLOW_THREADS
	r = sc_sendmsg(tok, fd, &msg, flags);
	Py_END_ALLOW_THREADS
	vec_release(&v);
	PyMem_Free(msg.msg_control);
	return int_result(r, tok);
}

/* A socket.socket around a new descriptor (family and type read from it). */
static PyObject *socket_from_fd(int fd)
{
	PyObject *mod = PyImport_ImportModule("socket"), *sock = NULL;
	PyObject *cls = mod ? PyObject_GetAttrString(mod, "socket") : NULL;
	PyObject *kw = cls ? Py_BuildValue("{s:i}", "fileno", fd) : NULL;
	PyObject *noargs = kw ? PyTuple_New(0) : NULL;

	if (noargs)
		sock = PyObject_Call(cls, noargs, kw);
	if (!sock)
		close(fd);
	Py_XDECREF(noargs);
	Py_XDECREF(kw);
	Py_XDECREF(cls);
	Py_XDECREF(mod);
	return sock;
}

static PyObject *py_accept(ARGS)
{
	PARSE("accept", 2, 1, "sock", "token", "flags");
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	sc_token *tok;
	int fd, flags;
	PyObject *sock, *addr;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[1], &tok) < 0 ||
	    int_arg(a[2], SOCK_CLOEXEC, "flags", &flags) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_accept(tok, fd, (struct sockaddr *)&ss, &alen, flags);
	Py_END_ALLOW_THREADS
	if (check(r, tok) < 0 || !(sock = socket_from_fd((int)r.value)))
		return NULL;
	if (!(addr = address_to_py(&ss, alen))) {
		Py_DECREF(sock);
		return NULL;
	}
	return Py_BuildValue("(NN)", sock, addr);
}

static PyObject *py_connect(ARGS)
{
	PARSE("connect", 3, 2, "sock", "address", "token");
	struct sockaddr_storage ss;
	socklen_t alen;
	sc_token *tok;
	int fd;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[2], &tok) < 0 ||
	    address_from_py(fd, a[1], &ss, &alen) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_connect(tok, fd, (struct sockaddr *)&ss, alen);
	Py_END_ALLOW_THREADS
	return none_result(r, tok);
}

/* A timeout in seconds (None: forever) as poll's milliseconds, rounded up. */
static int timeout_ms_arg(PyObject *o, int *ms)
{
	int64_t ns;

	*ms = -1;
	if (is_none(o))
		return 0;
	if (seconds_arg(o, "timeout", &ns, NULL) < 0)
		return -1;
	if ((ns + 999999) / 1000000 > INT_MAX) {
		PyErr_SetString(PyExc_OverflowError, "timeout is too large");
		return -1;
	}
	*ms = (int)((ns + 999999) / 1000000);
	return 0;
}

/* poll(fds, token=None, *, timeout=None): fds [(fd or file, events)] → [(fd, revents)] */
static PyObject *py_poll(ARGS)
{
	PARSE("poll", 2, 1, "fds", "token", "timeout");
	struct pollfd *p;
	sc_token *tok;
	PyObject *fast, *out = NULL;
	Py_ssize_t n;
	int ms;
	sc_result r;

	if (token_arg(a[1], &tok) < 0 || timeout_ms_arg(a[2], &ms) < 0)
		return NULL;
	if (!(fast = PySequence_Fast(a[0], "fds must be a sequence of (fd, events)")))
		return NULL;
	n = PySequence_Fast_GET_SIZE(fast);
	if (!(p = PyMem_Calloc(n ? n : 1, sizeof(*p)))) {
		Py_DECREF(fast);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
		long ev;

		if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
			PyErr_SetString(PyExc_TypeError, "fds must be a sequence of (fd, events)");
			goto out;
		}
		if (fd_arg(PyTuple_GET_ITEM(item, 0), &p[i].fd) < 0 ||
		    long_arg(PyTuple_GET_ITEM(item, 1), 0, 0xffff, "events", &ev) < 0)
			goto out;
		p[i].events = (short)ev;
	}
	Py_BEGIN_ALLOW_THREADS
	r = sc_poll(tok, p, n, ms);
	Py_END_ALLOW_THREADS
	if (check(r, tok) < 0 || !(out = PyList_New(0)))
		goto out;
	for (Py_ssize_t i = 0; i < n && out; i++) {
		PyObject *item;

		if (!p[i].revents)
			continue;
		item = Py_BuildValue("(ii)", p[i].fd, (unsigned short)p[i].revents);
		if (!item || PyList_Append(out, item) < 0)
			Py_CLEAR(out);
		Py_XDECREF(item);
	}
out:
	PyMem_Free(p);
	Py_DECREF(fast);
	return out;
}

/* epoll_wait(epoll, token=None, *, timeout=None, maxevents=-1) → [(fd, events)] */
static PyObject *py_epoll_wait(ARGS)
{
	PARSE("epoll_wait", 2, 1, "epoll", "token", "timeout", "maxevents");
	struct epoll_event *ev;
	sc_token *tok;
	PyObject *out = NULL;
	int fd, ms, max;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || token_arg(a[1], &tok) < 0 || timeout_ms_arg(a[2], &ms) < 0 ||
	    int_arg(a[3], -1, "maxevents", &max) < 0)
		return NULL;
	if (max == -1)
		max = 64;
	if (max <= 0 || max > 1 << 20) {
		PyErr_SetString(PyExc_ValueError, "maxevents must be -1 or 1 to 2**20");
		return NULL;
	}
	if (!(ev = PyMem_Calloc(max, sizeof(*ev))))
		return PyErr_NoMemory();
	Py_BEGIN_ALLOW_THREADS
	r = sc_epoll_wait(tok, fd, ev, max, ms);
	Py_END_ALLOW_THREADS
	if (check(r, tok) == 0 && (out = PyList_New(r.value))) {
		for (long i = 0; i < r.value; i++)
			PyList_SET_ITEM(out, i, Py_BuildValue("(iI)", ev[i].data.fd, ev[i].events));
	}
	PyMem_Free(ev);
	return out;
}

static PyObject *py_sleep(ARGS)
{
	PARSE("sleep", 2, 1, "seconds", "token");
	sc_token *tok;
	int64_t ns;
	sc_result r;

	if (seconds_arg(a[0], "seconds", &ns, NULL) < 0 || token_arg(a[1], &tok) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_sleep(tok, ns);
	Py_END_ALLOW_THREADS
	return none_result(r, tok);
}

/* waitpid(pid, options, token=None) → (pid, status), as os.waitpid */
static PyObject *py_waitpid(ARGS)
{
	PARSE("waitpid", 3, 2, "pid", "options", "token");
	sc_token *tok;
	long pid;
	int options, status = 0;
	sc_result r;

	if (long_arg(a[0], INT_MIN, INT_MAX, "pid", &pid) < 0 ||
	    int_arg(a[1], 0, "options", &options) < 0 || token_arg(a[2], &tok) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_waitpid(tok, (pid_t)pid, &status, options);
	Py_END_ALLOW_THREADS
	if (check(r, tok) < 0)
		return NULL;
	return Py_BuildValue("(li)", r.value, status);
}

/* open(path, flags, token=None, *, mode=0o777, dir_fd=None) → fd, as os.open */
static PyObject *py_open(ARGS)
{
	PARSE("open", 3, 2, "path", "flags", "token", "mode", "dir_fd");
	PyObject *path = NULL;
	sc_token *tok;
	int flags, mode, dirfd = AT_FDCWD;
	sc_result r;

	if (int_arg(a[1], 0, "flags", &flags) < 0 || token_arg(a[2], &tok) < 0 ||
	    int_arg(a[3], 0777, "mode", &mode) < 0 ||
	    (!is_none(a[4]) && fd_arg(a[4], &dirfd) < 0) || !PyUnicode_FSConverter(a[0], &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_openat(tok, dirfd, PyBytes_AS_STRING(path), flags | O_CLOEXEC, (mode_t)mode);
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	return int_result(r, tok);
}

static PyObject *py_flock(ARGS)
{
	PARSE("flock", 3, 2, "fd", "operation", "token");
	sc_token *tok;
	int fd, op;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || int_arg(a[1], 0, "operation", &op) < 0 ||
	    token_arg(a[2], &tok) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_flock(tok, fd, op);
	Py_END_ALLOW_THREADS
	return none_result(r, tok);
}

/* lockf(fd, cmd, token=None, *, len=0, start=0, whence=0), cmd as fcntl.lockf's */
static PyObject *py_lockf(ARGS)
{
	PARSE("lockf", 3, 2, "fd", "cmd", "token", "len", "start", "whence");
	struct flock lk = { 0 };
	sc_token *tok;
	long len = 0, start = 0;
	int fd, cmd, whence;
	sc_result r;

	if (fd_arg(a[0], &fd) < 0 || int_arg(a[1], 0, "cmd", &cmd) < 0 ||
	    token_arg(a[2], &tok) < 0 || (a[3] && long_arg(a[3], LONG_MIN, LONG_MAX, "len", &len) < 0) ||
	    (a[4] && long_arg(a[4], LONG_MIN, LONG_MAX, "start", &start) < 0) ||
	    int_arg(a[5], SEEK_SET, "whence", &whence) < 0)
		return NULL;
	switch (cmd & ~LOCK_NB) {
	case LOCK_UN: lk.l_type = F_UNLCK; break;
	case LOCK_SH: lk.l_type = F_RDLCK; break;
	case LOCK_EX: lk.l_type = F_WRLCK; break;
	default:
		PyErr_SetString(PyExc_ValueError, "cmd must be LOCK_UN, LOCK_SH or LOCK_EX (| LOCK_NB)");
		return NULL;
	}
	lk.l_whence = (short)whence;
	lk.l_start = start;
	lk.l_len = len;
	Py_BEGIN_ALLOW_THREADS
	r = sc_fcntl_lock(tok, fd, cmd & LOCK_NB ? F_SETLK : F_SETLKW, &lk);
	Py_END_ALLOW_THREADS
	return none_result(r, tok);
}

/* syscall(nr, *args, token=None): any blocking system call with integer arguments */
static PyObject *py_syscall(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			    PyObject *kwnames)
{
	long v[7] = { 0 };
	PyObject *tobj = NULL;
	sc_token *tok;
	sc_result r;

	(void)self;
	if (nargs < 1 || nargs > 7) {
		PyErr_SetString(PyExc_TypeError, "syscall() takes a number and up to 6 arguments");
		return NULL;
	}
	for (Py_ssize_t k = 0; kwnames && k < PyTuple_GET_SIZE(kwnames); k++) {
		if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "token")) {
			PyErr_SetString(PyExc_TypeError, "syscall() takes only token= by keyword");
			return NULL;
		}
		tobj = args[nargs + k];
	}
	for (Py_ssize_t i = 0; i < nargs; i++) {
		if (long_arg(args[i], LONG_MIN, LONG_MAX, "a syscall argument", &v[i]) < 0)
			return NULL;
	}
	if (token_arg(tobj, &tok) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = sc_syscall(tok, v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
	Py_END_ALLOW_THREADS
	return int_result(r, tok);
}

/* Library */

static PyObject *py_now(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	return PyFloat_FromDouble((double)sc_now_ns() / 1e9);
}

static PyObject *py_now_ns(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	return PyLong_FromLongLong(sc_now_ns());
}

static PyObject *py_init(ARGS)
{
	PARSE("init", 0, 0, "signo", "backend");
	sc_config cfg = { 0 };
	int backend;

	if (int_arg(a[0], 0, "signo", &cfg.signo) < 0 ||
	    int_arg(a[1], SC_BACKEND_DEFAULT, "backend", &backend) < 0)
		return NULL;
	cfg.backend = (sc_backend)backend;
	if (check_status(sc_init(&cfg)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *py_signal_number(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	return PyLong_FromLong(sc_signal_number());
}

static PyObject *py_thread_backend(PyObject *self, PyObject *arg)
{
	int backend;

	(void)self;
	if (int_arg(arg, 0, "backend", &backend) < 0 ||
	    check_status(sc_thread_backend((sc_backend)backend)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *py_scope_enter(PyObject *self, PyObject *arg)
{
	sc_token *tok;

	(void)self;
	if (is_none(arg)) {
		PyErr_SetString(PyExc_TypeError, "scope_enter() needs a token");
		return NULL;
	}
	if (token_arg(arg, &tok) < 0 || check_status(sc_scope_enter(tok)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *py_scope_exit(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	if (check_status(sc_scope_exit()) < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* Signals: tokens cancelled from a C handler, then the previous handler runs. */

#define SIGNAL_TOKENS 16
static _Atomic(sc_token *) signal_tokens[NSIG][SIGNAL_TOKENS];
static struct sigaction signal_prev[NSIG];
static atomic_bool signal_installed[NSIG];

static void on_signal(int signo, siginfo_t *info, void *ctx)
{
	const struct sigaction *prev = &signal_prev[signo];
	int saved = errno;

	for (int i = 0; i < SIGNAL_TOKENS; i++) {
		sc_token *tok = atomic_load(&signal_tokens[signo][i]);

		if (tok)
			sc_cancel(tok);
	}
	errno = saved;
	if (prev->sa_flags & SA_SIGINFO) {
		prev->sa_sigaction(signo, info, ctx);
	} else if (prev->sa_handler == SIG_DFL) {
		signal(signo, SIG_DFL);
		raise(signo);
	} else if (prev->sa_handler != SIG_IGN) {
		prev->sa_handler(signo);
	}
}

static int signal_install(int signo)
{
	struct sigaction sa = { .sa_sigaction = on_signal };

	if (atomic_load(&signal_installed[signo]))
		return 0;
	if (sigaction(signo, NULL, &signal_prev[signo]) < 0)
		return errno;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | (signal_prev[signo].sa_flags & SA_RESTART);
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, &sa, NULL) < 0)
		return errno;
	atomic_store(&signal_installed[signo], true);
	return 0;
}

/* cancel_on_signal(token, signum): the token is kept for the life of the process. */
static PyObject *py_cancel_on_signal(ARGS)
{
	PARSE("cancel_on_signal", 2, 2, "token", "signum");
	sc_token *tok;
	int signo, err;

	if (token_arg(a[0], &tok) < 0 || int_arg(a[1], 0, "signum", &signo) < 0)
		return NULL;
	if (!tok) {
		PyErr_SetString(PyExc_TypeError, "cancel_on_signal() needs a token");
		return NULL;
	}
	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP ||
	    signo == sc_signal_number()) {
		PyErr_Format(PyExc_ValueError, "signal number %d cannot be caught here", signo);
		return NULL;
	}
	for (int i = 0; i < SIGNAL_TOKENS; i++) {
		sc_token *expected = NULL;

		if (atomic_load(&signal_tokens[signo][i]) == tok)
			Py_RETURN_NONE;
		if (!atomic_compare_exchange_strong(&signal_tokens[signo][i], &expected, tok))
			continue;
		Py_INCREF(a[0]);
		if ((err = signal_install(signo)) == 0)
			Py_RETURN_NONE;
		atomic_store(&signal_tokens[signo][i], NULL);
		Py_DECREF(a[0]);
		return raise_errno(err);
	}
	PyErr_Format(PyExc_OverflowError, "more than %d tokens for signal %d", SIGNAL_TOKENS, signo);
	return NULL;
}

/* Token */

static int token_init(PyObject *o, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "parent", "timeout", NULL };
	token_object *t = (token_object *)o;
	PyObject *parent = Py_None, *timeout = Py_None;
	sc_token *ptok;
	int64_t ns = SC_NO_DEADLINE;
	int forever, err;

	if (t->live) {
		PyErr_SetString(PyExc_RuntimeError, "Token already initialised");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:Token", kwlist, &parent, &timeout) ||
	    token_arg(parent, &ptok) < 0 ||
	    (timeout != Py_None && seconds_arg(timeout, "timeout", &ns, &forever) < 0))
		return -1;
	if ((err = sc_token_init(&t->tok, ptok))) {
		raise_errno(err);
		return -1;
	}
	t->live = 1;
	if (ptok) {
		Py_INCREF(parent);
		t->parent = parent;
	}
	if (ns != SC_NO_DEADLINE && check_status(sc_token_set_timeout(&t->tok, ns)) < 0)
		return -1;
	return 0;
}

static int token_close_now(token_object *t)
{
	int err;

	if (!t->live)
		return 0;
	if ((err = sc_token_destroy(&t->tok)))
		return err;
	t->live = 0;
	Py_CLEAR(t->parent);
	return 0;
}

static void token_dealloc(PyObject *o)
{
	token_object *t = (token_object *)o;

	PyObject_GC_UnTrack(o);
	/*
	 * Calls, children and CancelScopes hold a reference, but a scope opened
	 * with scope_enter() alone does not: while the library still uses the
	 * token its memory is kept, never reused.
	 */
	if (token_close_now(t))
		return;
	Py_CLEAR(t->parent);
	Py_TYPE(o)->tp_free(o);
}

static int token_traverse(PyObject *o, visitproc visit, void *arg)
{
	Py_VISIT(((token_object *)o)->parent);
	return 0;
}

static sc_token *live_token(PyObject *o)
{
	sc_token *tok;

	return token_arg(o, &tok) < 0 ? NULL : tok;
}

static PyObject *token_cancel(PyObject *o, PyObject *const *args, Py_ssize_t nargs,
			      PyObject *kwnames)
{
	PyObject *self = o;
	PARSE("cancel", 1, 0, "cause");
	sc_token *tok = live_token(o);
	int cause;

	if (!tok || int_arg(a[0], ECANCELED, "cause", &cause) < 0)
		return NULL;
	if (cause <= 0) {
		PyErr_SetString(PyExc_ValueError, "cause must be > 0");
		return NULL;
	}
	if (check_status(sc_cancel_cause(tok, cause)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *token_is_cancelled(PyObject *o, PyObject *unused)
{
	sc_token *tok = live_token(o);

	(void)unused;
	return tok ? PyBool_FromLong(sc_is_cancelled(tok)) : NULL;
}

static PyObject *token_cause(PyObject *o, PyObject *unused)
{
	sc_token *tok = live_token(o);

	(void)unused;
	return tok ? PyLong_FromLong(sc_token_cause(tok)) : NULL;
}

static PyObject *token_set_timeout(PyObject *o, PyObject *arg)
{
	sc_token *tok = live_token(o);
	int64_t ns = SC_NO_DEADLINE;
	int forever;

	if (!tok || (!is_none(arg) && seconds_arg(arg, "timeout", &ns, &forever) < 0))
		return NULL;
	if (check_status(ns == SC_NO_DEADLINE ? sc_token_set_deadline(tok, SC_NO_DEADLINE) :
			 sc_token_set_timeout(tok, ns)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* An absolute deadline in seconds of time.monotonic(); None clears it. */
static PyObject *token_set_deadline(PyObject *o, PyObject *arg)
{
	sc_token *tok = live_token(o);
	int64_t ns = SC_NO_DEADLINE;
	int forever;

	if (!tok || (!is_none(arg) && seconds_arg(arg, "deadline", &ns, &forever) < 0) ||
	    check_status(sc_token_set_deadline(tok, ns)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *token_set_deadline_ns(PyObject *o, PyObject *arg)
{
	sc_token *tok = live_token(o);
	long ns = SC_NO_DEADLINE;

	if (!tok || (!is_none(arg) && long_arg(arg, 0, INT64_MAX, "deadline_ns", &ns) < 0) ||
	    check_status(sc_token_set_deadline(tok, ns)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *token_deadline(PyObject *o, PyObject *unused)
{
	sc_token *tok = live_token(o);
	int64_t dl;

	(void)unused;
	if (!tok)
		return NULL;
	dl = sc_token_deadline(tok);
	if (dl == SC_NO_DEADLINE)
		Py_RETURN_NONE;
	return PyFloat_FromDouble((double)dl / 1e9);
}

static PyObject *token_deadline_ns(PyObject *o, PyObject *unused)
{
	sc_token *tok = live_token(o);
	int64_t dl;

	(void)unused;
	if (!tok)
		return NULL;
	dl = sc_token_deadline(tok);
	if (dl == SC_NO_DEADLINE)
		Py_RETURN_NONE;
	return PyLong_FromLongLong(dl);
}

static PyObject *token_close(PyObject *o, PyObject *unused)
{
	(void)unused;
	if (check_status(token_close_now((token_object *)o)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *token_enter(PyObject *o, PyObject *unused)
{
	(void)unused;
	Py_INCREF(o);
	return o;
}

static PyObject *token_exit(PyObject *o, PyObject *args)
{
	return token_close(o, args);
}

static PyObject *token_closed(PyObject *o, void *unused)
{
	(void)unused;
	return PyBool_FromLong(!((token_object *)o)->live);
}

static PyObject *token_parent(PyObject *o, void *unused)
{
	PyObject *p = ((token_object *)o)->parent;

	(void)unused;
	p = p ? p : Py_None;
	Py_INCREF(p);
	return p;
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef token_methods[] = {
	{ "cancel", FASTCALL(token_cancel), METH_FASTCALL | METH_KEYWORDS,
	  "cancel(cause=None): cancel every call and scope under this token, now and later" },
	{ "is_cancelled", token_is_cancelled, METH_NOARGS,
	  "True once this token or an ancestor is cancelled" },
	{ "cause", token_cause, METH_NOARGS,
	  "the cancel cause in the chain, ETIMEDOUT past the deadline, else 0" },
	{ "set_timeout", token_set_timeout, METH_O,
	  "set_timeout(seconds): deadline = now + seconds; None (or too far to count) clears it" },
	{ "set_deadline", token_set_deadline, METH_O,
	  "set_deadline(t): absolute deadline in seconds of time.monotonic(); None clears it" },
	{ "set_deadline_ns", token_set_deadline_ns, METH_O,
	  "set_deadline_ns(ns): absolute deadline in CLOCK_MONOTONIC ns; None clears it" },
	{ "deadline", token_deadline, METH_NOARGS,
	  "the chain's earliest deadline in seconds of time.monotonic(), or None" },
	{ "deadline_ns", token_deadline_ns, METH_NOARGS,
	  "the chain's earliest deadline in CLOCK_MONOTONIC ns, or None" },
	{ "close", token_close, METH_NOARGS,
	  "destroy the token; OSError EBUSY while a call, child or scope uses it" },
	{ "__enter__", token_enter, METH_NOARGS, NULL },
	{ "__exit__", token_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyObject *token_address(PyObject *o, void *unused)
{
	(void)unused;
	return PyLong_FromVoidPtr(&((token_object *)o)->tok);
}

static PyGetSetDef token_getset[] = {
	{ "address", token_address, NULL,
	  "the address of the sc_token, as snapshot() reports it", NULL },
	{ "closed", token_closed, NULL, "True once close() succeeded", NULL },
	{ "parent", token_parent, NULL, "the parent token, or None", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject token_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "syscancel.Token",
	.tp_doc = "Token(parent=None, timeout=None): a cancellation token (sc_token)",
	.tp_basicsize = sizeof(token_object),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_new = PyType_GenericNew,
	.tp_init = token_init,
	.tp_dealloc = token_dealloc,
	.tp_traverse = token_traverse,
	.tp_methods = token_methods,
	.tp_getset = token_getset,
};

/* Introspection */

static PyObject *call_info_to_py(const sc_call_info *c, int64_t now)
{
	const char *name = c->syscall >= 0 ? sc_syscall_name(c->syscall) : NULL;
	PyObject *syscall = name ? PyUnicode_FromString(name) :
			    c->syscall >= 0 ? PyLong_FromLong(c->syscall) : Py_NewRef(Py_None);
	PyObject *deadline = c->deadline_ns == SC_NO_DEADLINE ? Py_NewRef(Py_None) :
			     PyLong_FromLongLong(c->deadline_ns);
	int64_t age = now > c->started_ns ? now - c->started_ns : 0;

	if (!syscall || !deadline) {
		Py_XDECREF(syscall);
		Py_XDECREF(deadline);
		return NULL;
	}
	return Py_BuildValue("{s:i,s:N,s:l,s:K,s:d,s:N,s:O,s:i,s:O}",
			     "tid", (int)c->tid, "syscall", syscall, "arg", c->arg,
			     "token", (unsigned long long)(uintptr_t)c->token,
			     "age_s", (double)age / 1e9, "deadline_ns", deadline,
			     "cancelled", c->cancelled ? Py_True : Py_False,
			     "cause", c->cause, "in_scope", c->in_scope ? Py_True : Py_False);
}

static PyObject *py_snapshot(PyObject *self, PyObject *unused)
{
	sc_call_info *buf = NULL;
	int n = 64, got;

	(void)self, (void)unused;
	for (;;) {
		sc_call_info *b = PyMem_Realloc(buf, (size_t)n * sizeof(*buf));
		if (!b) {
			PyMem_Free(buf);
			return PyErr_NoMemory();
		}
		buf = b;
		got = sc_snapshot(buf, n);
		if (got <= n)
			break;
		n = got + 16;
	}
	int64_t now = sc_now_ns();
	PyObject *list = PyList_New(0);

	for (int i = 0; list && i < got; i++) {
		PyObject *d = call_info_to_py(&buf[i], now);
		if (!d || PyList_Append(list, d) < 0)
			Py_CLEAR(list);
		Py_XDECREF(d);
	}
	PyMem_Free(buf);
	return list;
}

/* Module */

#define CALL(name, fn, doc) { name, FASTCALL(fn), METH_FASTCALL | METH_KEYWORDS, doc }

static PyMethodDef module_methods[] = {
	CALL("read", py_read, "read(fd, n, token=None) -> bytes"),
	CALL("readinto", py_readinto, "readinto(fd, buffer, token=None) -> int"),
	CALL("write", py_write, "write(fd, data, token=None) -> int"),
	CALL("pread", py_pread, "pread(fd, n, offset, token=None) -> bytes"),
	CALL("pwrite", py_pwrite, "pwrite(fd, data, offset, token=None) -> int"),
	CALL("readv", py_readv, "readv(fd, buffers, token=None) -> int"),
	CALL("writev", py_writev, "writev(fd, buffers, token=None) -> int"),
	CALL("recv", py_recv, "recv(sock, n, token=None, *, flags=0) -> bytes"),
	CALL("recv_into", py_recv_into,
	     "recv_into(sock, buffer, token=None, *, nbytes=0, flags=0) -> int"),
	CALL("recvfrom", py_recvfrom, "recvfrom(sock, n, token=None, *, flags=0) -> (bytes, address)"),
	CALL("recvfrom_into", py_recvfrom_into,
	     "recvfrom_into(sock, buffer, token=None, *, nbytes=0, flags=0) -> (int, address)"),
	CALL("recvmsg", py_recvmsg,
	     "recvmsg(sock, bufsize, token=None, *, ancbufsize=0, flags=0)"
	     " -> (data, ancdata, msg_flags, address)"),
	CALL("send", py_send, "send(sock, data, token=None, *, flags=0) -> int"),
	CALL("sendall", py_sendall, "sendall(sock, data, token=None, *, flags=0) -> None"),
	CALL("sendto", py_sendto, "sendto(sock, data, address, token=None, *, flags=0) -> int"),
	CALL("sendmsg", py_sendmsg,
	     "sendmsg(sock, buffers, token=None, *, ancdata=(), flags=0, address=None) -> int"),
	CALL("accept", py_accept,
	     "accept(sock, token=None, *, flags=SOCK_CLOEXEC) -> (socket, address)"),
	CALL("connect", py_connect, "connect(sock, address, token=None) -> None"),
	CALL("poll", py_poll, "poll(fds, token=None, *, timeout=None) -> [(fd, revents)]"),
	CALL("epoll_wait", py_epoll_wait,
	     "epoll_wait(epoll, token=None, *, timeout=None, maxevents=-1) -> [(fd, events)]"),
	CALL("sleep", py_sleep, "sleep(seconds, token=None) -> None"),
	CALL("waitpid", py_waitpid, "waitpid(pid, options, token=None) -> (pid, status)"),
	CALL("open", py_open, "open(path, flags, token=None, *, mode=0o777, dir_fd=None) -> fd"),
	CALL("flock", py_flock, "flock(fd, operation, token=None) -> None"),
	CALL("lockf", py_lockf, "lockf(fd, cmd, token=None, *, len=0, start=0, whence=0) -> None"),
	CALL("syscall", py_syscall, "syscall(nr, *args, token=None) -> int"),
	CALL("init", py_init, "init(signo=0, backend=BACKEND_DEFAULT) -> None"),
	CALL("cancel_on_signal", py_cancel_on_signal,
	     "cancel_on_signal(token, signum): a C-level handler cancels token on signum"),
	{ "now", py_now, METH_NOARGS, "CLOCK_MONOTONIC in seconds (time.monotonic's clock)" },
	{ "now_ns", py_now_ns, METH_NOARGS, "CLOCK_MONOTONIC in nanoseconds" },
	{ "signal_number", py_signal_number, METH_NOARGS, "the library's signal, or -1" },
	{ "thread_backend", py_thread_backend, METH_O, "thread_backend(backend) -> None" },
	{ "scope_enter", py_scope_enter, METH_O, "scope_enter(token): sc_scope_enter" },
	{ "scope_exit", py_scope_exit, METH_NOARGS, "scope_exit(): sc_scope_exit" },
	{ "snapshot", py_snapshot, METH_NOARGS,
	  "snapshot() -> [dict]: every call in flight and every thread in a scope (sc_snapshot)" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "syscancel._syscancel",
	.m_doc = "The C half of syscancel; use the syscancel package.",
	.m_size = -1,
	.m_methods = module_methods,
};

static int add_exception(PyObject *m, const char *name, PyObject *base, const char *doc,
			 PyObject **out)
{
	char qual[64];

	PyObject *dict = Py_BuildValue("{s:i}", "cause", 0);

	snprintf(qual, sizeof(qual), "syscancel.%s", name);
	*out = dict ? PyErr_NewExceptionWithDoc(qual, doc, base, dict) : NULL;
	Py_XDECREF(dict);
	if (!*out)
		return -1;
	Py_INCREF(*out);
	return PyModule_AddObject(m, name, *out);
}

PyMODINIT_FUNC PyInit__syscancel(void)
{
	PyObject *m;

	if (PyType_Ready(&token_type) < 0 || !(m = PyModule_Create(&module)))
		return NULL;
	Py_INCREF(&token_type);
	if (PyModule_AddObject(m, "Token", (PyObject *)&token_type) < 0 ||
	    add_exception(m, "Cancelled", PyExc_OSError,
			  "A token in the call's chain was cancelled: errno ECANCELED, cause the "
			  "token's cause; the call had no effect.", &cancelled_type) < 0 ||
	    add_exception(m, "TimedOut", PyExc_TimeoutError,
			  "The chain's deadline passed first: errno ETIMEDOUT; the call had no "
			  "effect.", &timedout_type) < 0 ||
	    PyModule_AddIntConstant(m, "NO_DEADLINE", SC_NO_DEADLINE) < 0 ||
	    PyModule_AddIntConstant(m, "SCOPE_MAX", SC_SCOPE_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "BACKEND_DEFAULT", SC_BACKEND_DEFAULT) < 0 ||
	    PyModule_AddIntConstant(m, "BACKEND_SIGNAL", SC_BACKEND_SIGNAL) < 0 ||
	    PyModule_AddIntConstant(m, "BACKEND_URING", SC_BACKEND_URING) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
