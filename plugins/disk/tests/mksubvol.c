/* Make a btrfs subvolume the way any user may (BTRFS_IOC_SUBVOL_CREATE): the disk tests
 * run it inside a CT to try leaving the CT's qgroup.  Usage: mksubvol DIR NAME */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/btrfs.h>

int main(int argc, char **argv)
{
    struct btrfs_ioctl_vol_args args;
    int fd;

    if (argc != 3) {
        fprintf(stderr, "usage: mksubvol DIR NAME\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    memset(&args, 0, sizeof(args));
    strncpy(args.name, argv[2], sizeof(args.name) - 1);
    if (ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &args) < 0) {
        perror("BTRFS_IOC_SUBVOL_CREATE");
        return 1;
    }
    return 0;
}
