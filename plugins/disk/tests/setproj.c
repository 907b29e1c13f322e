/* setproj DIR: try, as a CT's root may, to take DIR out of its project quota.
 * Prints one line per attempt, "NAME ok" or "NAME ERRNO-TEXT":
 *   fssetxattr: FS_IOC_FSSETXATTR with project ID 0 and no PROJINHERIT flag;
 *   setflags:   FS_IOC_SETFLAGS without FS_PROJINHERIT_FL (chattr -P).
 * Built static by the test so that it runs in any CT. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void report(const char *name, int rc) {
    printf("%s %s\n", name, rc == 0 ? "ok" : strerror(errno));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: setproj DIR\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    struct fsxattr fa;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fa) != 0) {
        perror("FS_IOC_FSGETXATTR");
        return 1;
    }
    fa.fsx_projid = 0;
    fa.fsx_xflags &= ~FS_XFLAG_PROJINHERIT;
    report("fssetxattr", ioctl(fd, FS_IOC_FSSETXATTR, &fa));
    long flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
        perror("FS_IOC_GETFLAGS");
        return 1;
    }
    flags &= ~FS_PROJINHERIT_FL;
    report("setflags", ioctl(fd, FS_IOC_SETFLAGS, &flags));
    return 0;
}
