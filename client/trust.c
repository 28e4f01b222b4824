#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hasp.h"

/* " (name)" for uid, or "" when it has none. */
static void trust_user_name(uid_t uid, char *buf, size_t size)
{
	char pwbuf[2048];
	struct passwd pw, *found = NULL;

	buf[0] = '\0';
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found)
		snprintf(buf, size, " (%s)", found->pw_name);
}

/* Refuses path: "refusing PATH: its directory DIR belongs to uid U (name),
 * mode 0755; WHY". */
static int trust_refuse_dir(const char *path, const char *dir, const struct stat *st,
			    const char *why, char *msg, size_t size)
{
	char name[300];

	trust_user_name(st->st_uid, name, sizeof(name));
	snprintf(msg, size, "refusing %s: its directory %s %s uid %u%s, mode %04o; %s", path, dir,
		 S_ISLNK(st->st_mode) ? "is a symbolic link owned by" : "belongs to",
		 (unsigned)st->st_uid, name, (unsigned)(st->st_mode & 07777), why);
	return -HASP_E_UNTRUSTED;
}

/* The directory part of path: "." for a bare name, "/" at the root. */
static int trust_dir_of(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (!slash)
		return snprintf(dir, size, ".") < 0 ? -EINVAL : 0;
	if (n == 0)
		n = 1;
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* Whether dir is the per-user default directory, /tmp/hasp-$EUID, however
 * spelt ("/tmp//hasp-1001", "/tmp/./hasp-1001"): its rule is the strict
 * one. A symbolic link spelt so is refused anyway (lstat). */
static bool trust_is_per_user(const char *dir)
{
	char mine[64], tmp[PATH_MAX], real[PATH_MAX];

	snprintf(mine, sizeof(mine), "/tmp/hasp-%u", (unsigned)geteuid());
	if (strcmp(dir, mine) == 0)
		return true;
	if (!strstr(dir, mine + 5) || !realpath("/tmp", tmp) || !realpath(dir, real))
		return false;
	return strncmp(real, tmp, strlen(tmp)) == 0 && strcmp(real + strlen(tmp), mine + 4) == 0;
}

/* What the directory alone tells: not a symbolic link, nobody else may
 * write to it, and the per-user default one is the caller's, mode 0700.
 * Checked before the socket: a squatted directory is refused even when
 * nothing listens in it yet. */
static int trust_check_dir(const char *path, const char *dir, const struct stat *d, char *msg,
			   size_t size)
{
	if (trust_is_per_user(dir)) {
		if (S_ISLNK(d->st_mode) || d->st_uid != geteuid() || (d->st_mode & 07777) != 0700)
			return trust_refuse_dir(path, dir, d, "it must be yours, mode 0700", msg, size);
		return 0;
	}
	if (S_ISLNK(d->st_mode))
		return trust_refuse_dir(path, dir, d, "it must be a directory, not a symbolic link",
					msg, size);
	if (!S_ISDIR(d->st_mode))
		return -ENOTDIR;
	if (d->st_mode & (S_IWGRP | S_IWOTH))
		return trust_refuse_dir(path, dir, d, "others can write to it, so anyone could "
					"have put the socket there", msg, size);
	return 0;
}

/* Whose directory it is: root's, the caller's, or that of the socket's
 * owner (a daemon under its own uid). */
static int trust_check_owner(const char *path, const char *dir, const struct stat *d,
			     const struct stat *s, char *msg, size_t size)
{
	uid_t me = geteuid();
	char why[160];

	if (d->st_uid == 0 || d->st_uid == me || d->st_uid == s->st_uid)
		return 0;
	snprintf(why, sizeof(why), "it must belong to root, to you (uid %u) or to the socket's "
		 "owner (uid %u)", (unsigned)me, (unsigned)s->st_uid);
	return trust_refuse_dir(path, dir, d, why, msg, size);
}

int trust_socket(const char *path, struct trust *ret, char *msg, size_t size)
{
	char dir[PATH_MAX];
	struct stat d, s;
	int r = trust_dir_of(path, dir, sizeof(dir));

	if (r < 0)
		return r;
	if (lstat(dir, &d) < 0)
		return -errno;
	r = trust_check_dir(path, dir, &d, msg, size);
	if (r < 0)
		return r;
	if (lstat(path, &s) < 0)
		return -errno;
	if (S_ISLNK(s.st_mode)) {
		snprintf(msg, size, "refusing %s: it is a symbolic link; give the socket's own path",
			 path);
		return -HASP_E_UNTRUSTED;
	}
	r = trust_check_owner(path, dir, &d, &s, msg, size);
	if (r < 0)
		return r;
	ret->dir_uid = d.st_uid;
	ret->sock_uid = s.st_uid;
	return 0;
}

int trust_peer(int fd, const char *path, const struct trust *t, char *msg, size_t size)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uid_t me = geteuid();
	char name[300];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (cred.uid == 0 || cred.uid == me || cred.uid == t->dir_uid || cred.uid == t->sock_uid)
		return 0;
	trust_user_name(cred.uid, name, sizeof(name));
	snprintf(msg, size, "refusing %s: it is served by pid %d of uid %u%s, which is neither root, "
		 "you (uid %u), nor the owner of the socket (uid %u) or of its directory (uid %u)",
		 path, (int)cred.pid, (unsigned)cred.uid, name, (unsigned)me, (unsigned)t->sock_uid,
		 (unsigned)t->dir_uid);
	return -HASP_E_UNTRUSTED;
}
