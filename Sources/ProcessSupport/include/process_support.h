/* Process-level C helpers.
 *
 * Which plugin call a fatal signal interrupted: the host records each call into a plugin
 * (plugin id, function, block) before making it, and a program that wants the report installs
 * the handler once. The library only records; installing is the program's decision.
 *
 * C's stdout for the command-line program (Swift 6 forbids touching the C global from Swift):
 * line buffering, silencing (ranks other than 0) and flushing. */
#pragma once

/** Records that a call into `plugin`'s `function` at `site` (may be "") starts. The strings
 *  are borrowed until the matching `lth4sa_crash_leave`. Calls nest; cheap (three stores).
 *  Process-wide: call from the one thread that calls plugins (the host's design); a crash on
 *  any thread while a call is recorded (e.g. on a pool thread running the plugin's
 *  `parallel_for`) is reported as that call's. */
void lth4sa_crash_enter(const char *plugin, const char *function, const char *site);

/** Ends the innermost call recorded by `lth4sa_crash_enter`. */
void lth4sa_crash_leave(void);

/** Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that, when the signal
 *  arrives during a recorded plugin call (on any thread), write one line to stderr
 *  ("lth4sa: plugin P crashed with SIGSEGV in FUNCTION at SITE; NOTE") and then let the
 *  signal end the process as it would have. `note` is copied (at most 255 bytes). Call once,
 *  from the main thread, before plugins run. Returns 0, or -1 when sigaction failed. */
int lth4sa_crash_install(const char *note);

/** Makes C's stdout line-buffered, even into a file or pipe. Call before any output. */
void lth4sa_stdout_line_buffered(void);

/** Sends C's stdout to /dev/null (a rank that must not print). Returns 0, or -1. */
int lth4sa_stdout_silence(void);

/** Flushes C's stdout (what Swift's `print` writes to). */
void lth4sa_stdout_flush(void);
