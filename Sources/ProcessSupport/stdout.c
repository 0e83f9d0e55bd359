#include "process_support.h"

#include <stdio.h>

void lth4sa_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

int lth4sa_stdout_silence(void) { return freopen("/dev/null", "w", stdout) ? 0 : -1; }

void lth4sa_stdout_flush(void) { fflush(stdout); }
