/*
 * Syscall names for snapshots and dumps: every syscall the library's calls
 * make, every one a scope can end, and the common ones a thread in a scope
 * may be seen waiting in.  Each is guarded, as architectures differ in which
 * they have.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <sys/syscall.h>

#define NAME(x) [SYS_##x] = #x

static const char *const names[] = {
#ifdef SYS_read
	NAME(read),
#endif
#ifdef SYS_write
	NAME(write),
#endif
#ifdef SYS_open
	NAME(open),
#endif
#ifdef SYS_close
	NAME(close),
#endif
#ifdef SYS_stat
	NAME(stat),
#endif
#ifdef SYS_fstat
	NAME(fstat),
#endif
#ifdef SYS_poll
	NAME(poll),
#endif
#ifdef SYS_lseek
	NAME(lseek),
#endif
#ifdef SYS_mmap
	NAME(mmap),
#endif
#ifdef SYS_munmap
	NAME(munmap),
#endif
#ifdef SYS_ioctl
	NAME(ioctl),
#endif
#ifdef SYS_pread64
	NAME(pread64),
#endif
#ifdef SYS_pwrite64
	NAME(pwrite64),
#endif
#ifdef SYS_readv
	NAME(readv),
#endif
#ifdef SYS_writev
	NAME(writev),
#endif
#ifdef SYS_pipe
	NAME(pipe),
#endif
#ifdef SYS_select
	NAME(select),
#endif
#ifdef SYS_sched_yield
	NAME(sched_yield),
#endif
#ifdef SYS_madvise
	NAME(madvise),
#endif
#ifdef SYS_dup
	NAME(dup),
#endif
#ifdef SYS_dup2
	NAME(dup2),
#endif
#ifdef SYS_pause
	NAME(pause),
#endif
#ifdef SYS_nanosleep
	NAME(nanosleep),
#endif
#ifdef SYS_alarm
	NAME(alarm),
#endif
#ifdef SYS_getpid
	NAME(getpid),
#endif
#ifdef SYS_sendfile
	NAME(sendfile),
#endif
#ifdef SYS_socket
	NAME(socket),
#endif
#ifdef SYS_connect
	NAME(connect),
#endif
#ifdef SYS_accept
	NAME(accept),
#endif
#ifdef SYS_sendto
	NAME(sendto),
#endif
#ifdef SYS_recvfrom
	NAME(recvfrom),
#endif
#ifdef SYS_sendmsg
	NAME(sendmsg),
#endif
#ifdef SYS_recvmsg
	NAME(recvmsg),
#endif
#ifdef SYS_shutdown
	NAME(shutdown),
#endif
#ifdef SYS_bind
	NAME(bind),
#endif
#ifdef SYS_listen
	NAME(listen),
#endif
#ifdef SYS_clone
	NAME(clone),
#endif
#ifdef SYS_fork
	NAME(fork),
#endif
#ifdef SYS_vfork
	NAME(vfork),
#endif
#ifdef SYS_execve
	NAME(execve),
#endif
#ifdef SYS_exit
	NAME(exit),
#endif
#ifdef SYS_wait4
	NAME(wait4),
#endif
#ifdef SYS_kill
	NAME(kill),
#endif
#ifdef SYS_semop
	NAME(semop),
#endif
#ifdef SYS_msgsnd
	NAME(msgsnd),
#endif
#ifdef SYS_msgrcv
	NAME(msgrcv),
#endif
#ifdef SYS_fcntl
	NAME(fcntl),
#endif
#ifdef SYS_flock
	NAME(flock),
#endif
#ifdef SYS_fsync
	NAME(fsync),
#endif
#ifdef SYS_fdatasync
	NAME(fdatasync),
#endif
#ifdef SYS_ftruncate
	NAME(ftruncate),
#endif
#ifdef SYS_getdents64
	NAME(getdents64),
#endif
#ifdef SYS_mkdir
	NAME(mkdir),
#endif
#ifdef SYS_unlink
	NAME(unlink),
#endif
#ifdef SYS_rt_sigaction
	NAME(rt_sigaction),
#endif
#ifdef SYS_rt_sigprocmask
	NAME(rt_sigprocmask),
#endif
#ifdef SYS_rt_sigtimedwait
	NAME(rt_sigtimedwait),
#endif
#ifdef SYS_rt_sigsuspend
	NAME(rt_sigsuspend),
#endif
#ifdef SYS_prctl
	NAME(prctl),
#endif
#ifdef SYS_gettid
	NAME(gettid),
#endif
#ifdef SYS_tkill
	NAME(tkill),
#endif
#ifdef SYS_tgkill
	NAME(tgkill),
#endif
#ifdef SYS_futex
	NAME(futex),
#endif
#ifdef SYS_futex_waitv
	NAME(futex_waitv),
#endif
#ifdef SYS_io_setup
	NAME(io_setup),
#endif
#ifdef SYS_io_getevents
	NAME(io_getevents),
#endif
#ifdef SYS_io_submit
	NAME(io_submit),
#endif
#ifdef SYS_io_pgetevents
	NAME(io_pgetevents),
#endif
#ifdef SYS_semtimedop
	NAME(semtimedop),
#endif
#ifdef SYS_timer_create
	NAME(timer_create),
#endif
#ifdef SYS_timer_settime
	NAME(timer_settime),
#endif
#ifdef SYS_timer_delete
	NAME(timer_delete),
#endif
#ifdef SYS_clock_gettime
	NAME(clock_gettime),
#endif
#ifdef SYS_clock_nanosleep
	NAME(clock_nanosleep),
#endif
#ifdef SYS_exit_group
	NAME(exit_group),
#endif
#ifdef SYS_epoll_wait
	NAME(epoll_wait),
#endif
#ifdef SYS_epoll_ctl
	NAME(epoll_ctl),
#endif
#ifdef SYS_epoll_pwait
	NAME(epoll_pwait),
#endif
#ifdef SYS_epoll_pwait2
	NAME(epoll_pwait2),
#endif
#ifdef SYS_waitid
	NAME(waitid),
#endif
#ifdef SYS_mq_timedsend
	NAME(mq_timedsend),
#endif
#ifdef SYS_mq_timedreceive
	NAME(mq_timedreceive),
#endif
#ifdef SYS_openat
	NAME(openat),
#endif
#ifdef SYS_openat2
	NAME(openat2),
#endif
#ifdef SYS_newfstatat
	NAME(newfstatat),
#endif
#ifdef SYS_unlinkat
	NAME(unlinkat),
#endif
#ifdef SYS_pselect6
	NAME(pselect6),
#endif
#ifdef SYS_ppoll
	NAME(ppoll),
#endif
#ifdef SYS_splice
	NAME(splice),
#endif
#ifdef SYS_tee
	NAME(tee),
#endif
#ifdef SYS_vmsplice
	NAME(vmsplice),
#endif
#ifdef SYS_sync_file_range
	NAME(sync_file_range),
#endif
#ifdef SYS_fallocate
	NAME(fallocate),
#endif
#ifdef SYS_timerfd_create
	NAME(timerfd_create),
#endif
#ifdef SYS_timerfd_settime
	NAME(timerfd_settime),
#endif
#ifdef SYS_eventfd2
	NAME(eventfd2),
#endif
#ifdef SYS_accept4
	NAME(accept4),
#endif
#ifdef SYS_signalfd4
	NAME(signalfd4),
#endif
#ifdef SYS_epoll_create1
	NAME(epoll_create1),
#endif
#ifdef SYS_dup3
	NAME(dup3),
#endif
#ifdef SYS_pipe2
	NAME(pipe2),
#endif
#ifdef SYS_preadv
	NAME(preadv),
#endif
#ifdef SYS_pwritev
	NAME(pwritev),
#endif
#ifdef SYS_preadv2
	NAME(preadv2),
#endif
#ifdef SYS_pwritev2
	NAME(pwritev2),
#endif
#ifdef SYS_recvmmsg
	NAME(recvmmsg),
#endif
#ifdef SYS_sendmmsg
	NAME(sendmmsg),
#endif
#ifdef SYS_getrandom
	NAME(getrandom),
#endif
#ifdef SYS_memfd_create
	NAME(memfd_create),
#endif
#ifdef SYS_membarrier
	NAME(membarrier),
#endif
#ifdef SYS_copy_file_range
	NAME(copy_file_range),
#endif
#ifdef SYS_statx
	NAME(statx),
#endif
#ifdef SYS_rseq
	NAME(rseq),
#endif
#ifdef SYS_io_uring_setup
	NAME(io_uring_setup),
#endif
#ifdef SYS_io_uring_enter
	NAME(io_uring_enter),
#endif
#ifdef SYS_io_uring_register
	NAME(io_uring_register),
#endif
#ifdef SYS_pidfd_open
	NAME(pidfd_open),
#endif
#ifdef SYS_pidfd_send_signal
	NAME(pidfd_send_signal),
#endif
#ifdef SYS_clone3
	NAME(clone3),
#endif
#ifdef SYS_close_range
	NAME(close_range),
#endif
};

const char *sc_syscall_name(long nr)
{
	if (nr < 0 || (unsigned long)nr >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[nr];
}
