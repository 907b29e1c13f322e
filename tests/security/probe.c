/* probe: try one operation a CT must not be able to do; print "ok" or the errno name.
 * Exit 0 when the operation succeeded, 1 when it failed, 2 on a usage error.
 * Built statically by the security tests and copied into the CT under test. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_packet.h>
#include <linux/reboot.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/socket.h>
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

/* Raw Ethernet from the CT (bridged spoofing tests): "ether IF SRC" sends a broadcast
 * frame of the local experimental EtherType from MAC SRC; "arp IF SRC SHA SPA TPA" an ARP
 * request "who has TPA, tell SPA at SHA" from SRC.  Verdict: whether the CT could send it
 * (the host end's filter drops it silently; the test looks at the host's tables). */
static int parse_mac(const char *text, unsigned char *mac) {
    return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
                  &mac[4], &mac[5]) == 6 ? 0 : -1;
}

static int send_frame(const char *ifname, const char *src, int arp, char **fields) {
    unsigned char frame[60] = {0};
    memset(frame, 0xff, 6);
    if (parse_mac(src, frame + 6) < 0) return 2;
    frame[12] = arp ? 0x08 : 0x88;
    frame[13] = arp ? 0x06 : 0xb5;
    if (arp) {
        unsigned char *p = frame + 14;
        p[1] = 1; p[2] = 0x08; p[4] = 6; p[5] = 4; p[7] = 1;  /* Ethernet, IPv4, request */
        if (parse_mac(fields[0], p + 8) < 0 || inet_pton(AF_INET, fields[1], p + 14) != 1 ||
            inet_pton(AF_INET, fields[2], p + 24) != 1)
            return 2;
    }
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) return report(-1);
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname),
                             .sll_halen = 6};
    memset(to.sll_addr, 0xff, 6);
    long sent = sendto(fd, frame, sizeof frame, 0, (struct sockaddr *)&to, sizeof to);
    close(fd);
    return report(sent < 0 ? -1 : 0);
}

/* "na IF TARGET MAC": an unsolicited, overriding Neighbour Advertisement to all nodes
 * saying that IPv6 address TARGET is at MAC (the kernel fills in source and checksum). */
static int send_advert(const char *ifname, const char *target, const char *mac) {
    struct {
        struct nd_neighbor_advert na;
        unsigned char option[8];
    } msg = {0};
    msg.na.nd_na_type = ND_NEIGHBOR_ADVERT;
    msg.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
    msg.option[0] = ND_OPT_TARGET_LINKADDR;
    msg.option[1] = 1;
    if (inet_pton(AF_INET6, target, &msg.na.nd_na_target) != 1 || parse_mac(mac, msg.option + 2) < 0)
        return 2;
    int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    if (fd < 0) return report(-1);
    int hops = 255, loop = 0;  /* not looped back: the sender's own table stays right */
    unsigned index = if_nametoindex(ifname);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_scope_id = index};
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    long sent = -1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) == 0 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index) == 0 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) == 0)
        sent = sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&to, sizeof to);
    close(fd);
    return report(sent < 0 ? -1 : 0);
}

/* Write TEXT to PATH (a whole value, such as "max" into a cgroup limit). */
static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return report(-1);
    long n = write(fd, text, strlen(text));
    close(fd);
    return report(n < 0 ? -1 : 0);
}

/* Mount binfmt_misc at DIR and register a handler "vzprobe" there (left in place: the
 * test looks for it in the host's instance, which is what a privileged CT would get;
 * binfmt_misc is namespaced only per user namespace). */
static int binfmt(const char *dir) {
    char path[512];
    if (mount("binfmt_misc", dir, "binfmt_misc", 0, NULL) < 0) return report(-1);
    snprintf(path, sizeof path, "%s/register", dir);
    return write_text(path, ":vzprobe:E::vzprobe::/bin/true:");
}

/* The 'shocker' escape: a handle opened with open_by_handle_at is not confined to the
 * caller's root. */
static int shocker(const char *path) {
    struct { struct file_handle handle; unsigned char bytes[MAX_HANDLE_SZ]; } h;
    int mount_id;
    h.handle.handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(AT_FDCWD, path, &h.handle, &mount_id, 0) < 0) {
        printf("name_to_handle_at:%s\n", strerrorname_np(errno));
        return 1;
    }
    int root = open(path, O_RDONLY | O_DIRECTORY);
    return report(syscall(SYS_open_by_handle_at, root, &h.handle, O_RDONLY));
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
    if (!strcmp(op, "mknod-char") && argc == 5) {
        if (mknod(argv[2], S_IFCHR | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0) return report(-1);
        return read_one(argv[2], O_RDONLY);
    }
    if (!strcmp(op, "write-text") && argc == 4) return write_text(argv[2], argv[3]);
    if (!strcmp(op, "binfmt") && argc == 3) return binfmt(argv[2]);
    if (!strcmp(op, "shocker") && argc == 3) return shocker(argv[2]);
    if (!strcmp(op, "bind") && argc == 4) return report(mount(argv[2], argv[3], NULL, MS_BIND, NULL));
    if (!strcmp(op, "freeze") && argc == 3) {
        /* Thawed at once: only the verdict matters, never a frozen file system. */
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) return report(-1);
        long frozen = ioctl(fd, FIFREEZE, 0);
        int saved = errno;
        if (frozen == 0) ioctl(fd, FITHAW, 0);
        close(fd);
        errno = saved;
        return report(frozen);
    }
    if (!strcmp(op, "ioctl") && argc == 4) {
        /* ioctl(PATH, REQUEST (hex), a zeroed buffer): fine for the requests tested. */
        static char buf[4096];
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) return report(-1);
        long result = ioctl(fd, strtoul(argv[3], NULL, 16), buf);
        int saved = errno;
        close(fd);
        errno = saved;
        return report(result);
    }
    if (!strcmp(op, "fanotify-fs") && argc == 3) {
        int fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
        if (fd < 0) return report(-1);
        long marked = fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, argv[2]);
        int saved = errno;
        close(fd);
        errno = saved;
        return report(marked);
    }
    if (!strcmp(op, "mount") && (argc == 5 || argc == 6))
        return report(mount(argv[2], argv[3], argv[4], 0, argc == 6 ? argv[5] : NULL));
    if (!strcmp(op, "umount") && argc == 3) return report(umount2(argv[2], 0));
    if (!strcmp(op, "remount-rw") && argc == 3)
        return report(mount(NULL, argv[2], NULL, MS_REMOUNT | MS_BIND, NULL) == 0 ||
                      mount(NULL, argv[2], NULL, MS_REMOUNT, NULL) == 0 ? 0 : -1);
    if (!strcmp(op, "kill") && argc == 3) return report(kill(atoi(argv[2]), 0));
    if (!strcmp(op, "ether") && argc == 4) return send_frame(argv[2], argv[3], 0, NULL);
    if (!strcmp(op, "arp") && argc == 7) return send_frame(argv[2], argv[3], 1, argv + 4);
    if (!strcmp(op, "na") && argc == 5) return send_advert(argv[2], argv[3], argv[4]);
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
