/* A probe of device access, run inside a CT by the devices plugin's tests.
 *
 *   devprobe open PATH r|w|rw      prints "ok" or the errno name of open(2)
 *   devprobe tun                   opens /dev/net/tun and makes a tun device: "ok" or errno
 *   devprobe fuse DIR              opens /dev/fuse and mounts a FUSE file system on DIR (then
 *                                  unmounts it): "ok" or the errno of the step that failed
 *   devprobe loop PATH STOPFILE    opens PATH read-only, write-only and read-write over and
 *                                  over until STOPFILE exists, then prints how often each
 *                                  succeeded: "r=N w=N rw=N rounds=N"; makes STOPFILE.started
 *                                  after its first round
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

static const char *name_of(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENXIO: return "ENXIO";
    case ENODEV: return "ENODEV";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    default: return "EOTHER";
    }
}

static int mode_of(const char *m) {
    if (!strcmp(m, "r")) return O_RDONLY;
    if (!strcmp(m, "w")) return O_WRONLY;
    return O_RDWR;
}

static int try_open(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "open")) {
        int fd = open(argv[2], mode_of(argv[3]) | O_CLOEXEC);
        puts(fd < 0 ? name_of(errno) : "ok");
        return fd < 0;
    }
    if (argc == 2 && !strcmp(argv[1], "tun")) {
        struct ifreq ifr;
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0) { puts(name_of(errno)); return 1; }
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        strcpy(ifr.ifr_name, "vzprobetun0");
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) { puts(name_of(errno)); return 1; }
        puts("ok");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "fuse")) {
        char options[256];
        int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd < 0) { puts(name_of(errno)); return 1; }
        snprintf(options, sizeof options, "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
        if (mount("vzprobe", argv[2], "fuse", MS_NOSUID | MS_NODEV, options) < 0) {
            puts(name_of(errno));
            return 1;
        }
        umount2(argv[2], MNT_DETACH);
        puts("ok");
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "loop")) {
        char started[4096];
        long r = 0, w = 0, rw = 0, rounds = 0;
        snprintf(started, sizeof started, "%s.started", argv[3]);
        while (access(argv[3], F_OK) != 0) {
            r += try_open(argv[2], O_RDONLY);
            w += try_open(argv[2], O_WRONLY);
            rw += try_open(argv[2], O_RDWR);
            if (rounds++ == 0) close(open(started, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        }
        printf("r=%ld w=%ld rw=%ld rounds=%ld\n", r, w, rw, rounds);
        return 0;
    }
    fputs("usage: devprobe open PATH r|w|rw | tun | fuse DIR | loop PATH STOPFILE\n", stderr);
    return 2;
}
