/* probe: try one operation a CT must not be able to do; print "ok" or the errno name.
 * Exit 0 when the operation succeeded, 1 when it failed, 2 on a usage error.
 * Built statically by the security tests and copied into the CT under test. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static int report(long result) {
    if (result < 0) {
        printf("%s\n", strerrorname_np(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int read_one(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return report(-1);
    char byte = 0;
    long n = (flags & O_ACCMODE) == O_RDONLY ? read(fd, &byte, 1) : write(fd, "1", 1);
    close(fd);
    return report(n < 0 ? -1 : 0);
}

/* Push ``text`` into the input of the terminal ``fd`` (TIOCSTI): 0 or -1 with errno. */
static int inject(int fd, const char *text) {
    for (; *text; text++)
        if (ioctl(fd, TIOCSTI, text) < 0) return -1;
    return 0;
}

static int inject_verdict(const char *name, int fd, const char *text) {
    int result = fd < 0 ? -1 : inject(fd, text);
    printf("%s:%s ", name, result < 0 ? strerrorname_np(errno) : "ok");
    return result == 0;
}

/* Every way a CT program has to type into a terminal: /dev/tty (the controlling
 * terminal) and its stdio.  Prints "tty:VERDICT 0:VERDICT 1:VERDICT 2:VERDICT". */
static int tiocsti(const char *text) {
    int injected = inject_verdict("tty", open("/dev/tty", O_RDWR | O_NOCTTY), text);
    injected |= inject_verdict("0", 0, text);
    injected |= inject_verdict("1", 1, text);
    injected |= inject_verdict("2", 2, text);
    printf("\n");
    return injected ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *op = argv[1];
    if (!strcmp(op, "init_module")) return report(syscall(SYS_init_module, NULL, 0, ""));
    if (!strcmp(op, "finit_module")) return report(syscall(SYS_finit_module, -1, "", 0));
    if (!strcmp(op, "kexec_load")) return report(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(op, "reboot"))
        return report(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                              LINUX_REBOOT_CMD_CAD_OFF, NULL));
    if (!strcmp(op, "settime")) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        return report(clock_settime(CLOCK_REALTIME, &now));
    }
    if (!strcmp(op, "syslog")) {
        static char buf[4096];
        return report(klogctl(3, buf, sizeof buf));
    }
    if (!strcmp(op, "keyctl")) return report(syscall(SYS_keyctl, 0, -3, 0));
    if (!strcmp(op, "bpf")) return report(syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(op, "perf_event_open")) return report(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    if (!strcmp(op, "open_by_handle_at")) return report(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY));
    if (!strcmp(op, "read") && argc == 3) return read_one(argv[2], O_RDONLY);
    if (!strcmp(op, "write") && argc == 3) return read_one(argv[2], O_WRONLY);
    if (!strcmp(op, "mknod-block") && argc == 5) {
        if (mknod(argv[2], S_IFBLK | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0) return report(-1);
        return read_one(argv[2], O_RDONLY);
    }
    if (!strcmp(op, "mount") && (argc == 5 || argc == 6))
        return report(mount(argv[2], argv[3], argv[4], 0, argc == 6 ? argv[5] : NULL));
    if (!strcmp(op, "umount") && argc == 3) return report(umount2(argv[2], 0));
    if (!strcmp(op, "remount-rw") && argc == 3)
        return report(mount(NULL, argv[2], NULL, MS_REMOUNT | MS_BIND, NULL) == 0 ||
                      mount(NULL, argv[2], NULL, MS_REMOUNT, NULL) == 0 ? 0 : -1);
    if (!strcmp(op, "kill") && argc == 3) return report(kill(atoi(argv[2]), 0));
    if (!strcmp(op, "tiocsti") && argc == 3) return tiocsti(argv[2]);
    if (!strcmp(op, "fds")) {
        DIR *dir = opendir("/proc/self/fd");
        struct dirent *entry;
        char path[512], target[512];
        while (dir && (entry = readdir(dir))) {
            if (entry->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            printf("%s %s\n", entry->d_name, target);
        }
        return 0;
    }
    return 2;
}
