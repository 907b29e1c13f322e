/* qctl: one quotactl(2) call on user quota, for the second-level quota tests (a busybox CT
 * has no tool that names a device or an ID outside its users directly).
 *   qctl get  DEV ID          prints "bhard bsoft curspace"
 *   qctl set  DEV ID BLOCKS   sets the block soft and hard limits (1K blocks)
 *   qctl next DEV ID          prints the next ID with an entry at or past ID
 *   qctl off  DEV             Q_QUOTAOFF
 * Exits 0, or prints "errno N" and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/quota.h>
#include <linux/quota.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *dev = argv[2];
	unsigned id = argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
	int rc;
	if (!strcmp(argv[1], "get")) {
		struct if_dqblk q;
		rc = quotactl(QCMD(Q_GETQUOTA, USRQUOTA), dev, id, (caddr_t)&q);
		if (!rc)
			printf("%llu %llu %llu\n", (unsigned long long)q.dqb_bhardlimit,
			       (unsigned long long)q.dqb_bsoftlimit, (unsigned long long)q.dqb_curspace);
	} else if (!strcmp(argv[1], "set") && argc > 4) {
		struct if_dqblk q;
		memset(&q, 0, sizeof(q));
		q.dqb_bhardlimit = q.dqb_bsoftlimit = strtoull(argv[4], NULL, 10);
		q.dqb_valid = QIF_BLIMITS;
		rc = quotactl(QCMD(Q_SETQUOTA, USRQUOTA), dev, id, (caddr_t)&q);
	} else if (!strcmp(argv[1], "next")) {
		struct if_nextdqblk q;
		rc = quotactl(QCMD(Q_GETNEXTQUOTA, USRQUOTA), dev, id, (caddr_t)&q);
		if (!rc)
			printf("%u\n", q.dqb_id);
	} else if (!strcmp(argv[1], "off")) {
		rc = quotactl(QCMD(Q_QUOTAOFF, USRQUOTA), dev, 0, NULL);
	} else {
		return 2;
	}
	if (rc) {
		printf("errno %d\n", errno);
		return 1;
	}
	return 0;
}
