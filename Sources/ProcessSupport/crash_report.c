#include "process_support.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The recorded calls, innermost last. Process-wide, not per thread: the host calls plugins
 * from one thread at a time, and a plugin's work may run on pool threads (`parallel_for`), so
 * a crash on any thread during a call belongs to that call. Nesting happens when a searcher's
 * callback into the host runs a SAM plugin. */
#define MAX_DEPTH 8
static struct { const char *plugin, *function, *site; } calls[MAX_DEPTH];
static volatile int depth;
static char crash_note[256];

void lth4sa_crash_enter(const char *plugin, const char *function, const char *site) {
    if (depth < MAX_DEPTH) calls[depth].plugin = plugin, calls[depth].function = function, calls[depth].site = site;
    depth++;
}

void lth4sa_crash_leave(void) {
    if (depth > 0) depth--;
}

static void put(const char *text) {
    if (text) (void)!write(STDERR_FILENO, text, strlen(text));
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
    }
}

/* Async-signal-safe: write(2) only, then the default action. */
static void on_fatal_signal(int sig) {
    const int top = (depth > MAX_DEPTH ? MAX_DEPTH : depth) - 1;
    if (top >= 0 && calls[top].plugin) {
        const char *current_plugin = calls[top].plugin, *current_function = calls[top].function, *current_site = calls[top].site;
        put("\nlth4sa: plugin ");
        put(current_plugin);
        put(" crashed with ");
        put(signal_name(sig));
        put(" in ");
        put(current_function);
        if (current_site && current_site[0]) {
            put(" at ");
            put(current_site);
        }
        if (crash_note[0]) {
            put("; ");
            put(crash_note);
        }
        put("\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

int lth4sa_crash_install(const char *note) {
    strncpy(crash_note, note ? note : "", sizeof crash_note - 1);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_fatal_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_NODEFER;
    const int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    return 0;
}
