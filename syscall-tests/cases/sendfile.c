/* sendfile, copy_file_range, splice, tee. */
#include "harness.h"
#include <sys/sendfile.h>

CASE(sendfile_file_to_file)
{
	st_write_file(P("src"), "0123456789");
	int in = CHECK_OK(open(P("src"), O_RDONLY));
	int out = CHECK_OK(open(P("dst"), O_WRONLY | O_CREAT, 0644));
	CHECK_EQ(sendfile(out, in, NULL, 100), 10);
	CHECK_EQ(lseek(in, 0, SEEK_CUR), 10);
	char buf[16];
	st_read_file(P("dst"), buf, sizeof buf);
	CHECK_STREQ(buf, "0123456789");
	close(in);
	close(out);
}

CASE(sendfile_with_offset)
{
	st_write_file(P("src"), "0123456789");
	int in = CHECK_OK(open(P("src"), O_RDONLY));
	int out = CHECK_OK(open(P("dst"), O_WRONLY | O_CREAT, 0644));
	off_t off = 4;
	CHECK_EQ(sendfile(out, in, &off, 3), 3);
	CHECK_EQ(off, 7);
	/* The file offset is not used or changed when an offset is given. */
	CHECK_EQ(lseek(in, 0, SEEK_CUR), 0);
	char buf[16];
	st_read_file(P("dst"), buf, sizeof buf);
	CHECK_STREQ(buf, "456");
	off = 10;
	CHECK_EQ(sendfile(out, in, &off, 5), 0);
	close(in);
	close(out);
}

CASE(sendfile_to_pipe)
{
	st_write_file(P("src"), "through a pipe");
	int in = CHECK_OK(open(P("src"), O_RDONLY));
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(sendfile(p[1], in, NULL, 100), 14);
	char buf[32] = { 0 };
	CHECK_EQ(read(p[0], buf, sizeof buf), 14);
	CHECK_STREQ(buf, "through a pipe");
	close(in);
	close(p[0]);
	close(p[1]);
}

CASE(sendfile_errors)
{
	st_write_file(P("src"), "x");
	int in = CHECK_OK(open(P("src"), O_RDONLY));
	int wronly = CHECK_OK(open(P("src"), O_WRONLY));
	CHECK_ERR(sendfile(in, in, NULL, 1), EBADF);
	CHECK_ERR(sendfile(wronly, wronly, NULL, 1), EBADF);
	CHECK_ERR(sendfile(wronly, 9999, NULL, 1), EBADF);
	close(in);
	close(wronly);
}

CASE(copy_file_range_copies)
{
	st_write_file(P("src"), "abcdefghij");
	int in = CHECK_OK(open(P("src"), O_RDONLY));
	int out = CHECK_OK(open(P("dst"), O_WRONLY | O_CREAT, 0644));
	loff_t ioff = 2, ooff = 0;
	CHECK_EQ(copy_file_range(in, &ioff, out, &ooff, 5, 0), 5);
	CHECK_EQ(ioff, 7);
	CHECK_EQ(ooff, 5);
	char buf[16];
	st_read_file(P("dst"), buf, sizeof buf);
	CHECK_STREQ(buf, "cdefg");
	CHECK_ERR(copy_file_range(in, NULL, out, NULL, 1, 1), EINVAL);
	close(in);
	close(out);
}

CASE(splice_pipe_to_file)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "spliced data", 12), 12);
	int out = CHECK_OK(open(P("dst"), O_WRONLY | O_CREAT, 0644));
	CHECK_EQ(splice(p[0], NULL, out, NULL, 100, 0), 12);
	char buf[16];
	st_read_file(P("dst"), buf, sizeof buf);
	CHECK_STREQ(buf, "spliced data");
	/* File to pipe with an explicit offset. */
	int in = CHECK_OK(open(P("dst"), O_RDONLY));
	loff_t off = 8;
	CHECK_EQ(splice(in, &off, p[1], NULL, 100, 0), 4);
	CHECK_EQ(off, 12);
	char b2[8] = { 0 };
	CHECK_EQ(read(p[0], b2, sizeof b2), 4);
	CHECK_STREQ(b2, "data");
	/* At least one end must be a pipe. */
	CHECK_ERR(splice(in, NULL, out, NULL, 10, 0), EINVAL);
	close(in);
	close(out);
	close(p[0]);
	close(p[1]);
}

CASE(tee_duplicates_pipe_data)
{
	int a[2], b[2];
	CHECK_OK(pipe(a));
	CHECK_OK(pipe(b));
	CHECK_EQ(write(a[1], "teed", 4), 4);
	CHECK_EQ(tee(a[0], b[1], 100, 0), 4);
	char buf[8] = { 0 };
	CHECK_EQ(read(b[0], buf, sizeof buf), 4);
	CHECK_STREQ(buf, "teed");
	memset(buf, 0, sizeof buf);
	/* The source still holds the data. */
	CHECK_EQ(read(a[0], buf, sizeof buf), 4);
	CHECK_STREQ(buf, "teed");
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}
